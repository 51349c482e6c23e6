"""Training a noised CLIP (`train-clip`): its small tokenizer, its loss and a whole tiny run."""

import json
import math

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from diffusers_glide import GlidePipeline
from diffusers_glide.cli import main
from diffusers_glide.clip_tokenization import build_small_clip_tokenizer, tokenize_clip_prompts
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.shapes import caption_vocabulary
from diffusers_glide.training.clip_trainer import (
    MAX_LOGIT_SCALE,
    NoisedCLIPTrainer,
    build_clip_parser,
    check_clip_training_arguments,
    contrastive_loss,
    train_clip,
)

BYTE_SYMBOLS = 256  # the vocabulary starts with the 256 byte symbols, then the same with </w>


def test_small_clip_tokenizer_keeps_every_caption_word_whole():
    tokenizer = build_small_clip_tokenizer(caption_vocabulary(), context_length=16)
    for word in caption_vocabulary():
        ids, mask = tokenize_clip_prompts(tokenizer, [word], 16)
        assert mask.sum().item() == 3, (word, tokenizer.convert_ids_to_tokens(ids[0, :4].tolist()))
        assert tokenizer.convert_ids_to_tokens(ids[0, 1].item()) == word + "</w>"
    # "a</w>": printable ASCII starts at "!" (33) among the byte symbols, so "a" (97) is symbol 64, after the 256
    ids, mask = tokenize_clip_prompts(tokenizer, ["A red circle"], 16)
    assert ids[0, 1].item() == BYTE_SYMBOLS + 97 - 33
    assert ids[0, 0].item() == len(tokenizer) - 2 and ids[0, 4].item() == len(tokenizer) - 1  # start, end
    assert mask.sum().item() == 5 and ids[0, 5:].tolist() == [0] * 11


def test_small_clip_tokenizer_spells_other_words_and_round_trips(tmp_path):
    tokenizer = build_small_clip_tokenizer(["red", "circle"], context_length=8)
    ids, mask = tokenize_clip_prompts(tokenizer, ["purple"], 8)
    # no merge for "purple": one token per letter, the last with </w>
    assert tokenizer.convert_ids_to_tokens(ids[0, 1:7].tolist()) == ["p", "u", "r", "p", "l", "e</w>"]
    tokenizer.save_pretrained(tmp_path)
    from transformers import CLIPTokenizer

    reloaded = CLIPTokenizer.from_pretrained(tmp_path)
    assert torch.equal(
        tokenize_clip_prompts(reloaded, ["red circle purple"], 8)[0],
        tokenize_clip_prompts(tokenizer, ["red circle purple"], 8)[0],
    )
    with pytest.raises(ValueError, match="single words of ASCII letters and digits, got 'red circle'"):
        build_small_clip_tokenizer(["red circle"])


def test_contrastive_loss_matches_hand_computed_values():
    embeds = torch.eye(2)
    log_scale = torch.tensor(math.log(10.0))
    # distinct captions: each image's own caption has logit 10, the other 0
    loss = contrastive_loss(embeds, embeds, log_scale, ["x", "y"])
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-10)), abs=1e-6)
    # equal captions share the target: half on logit 10, half on logit 0
    loss = contrastive_loss(embeds, embeds, log_scale, ["x", "x"])
    expected = 0.5 * (math.log(1 + math.exp(-10)) + math.log(1 + math.exp(10)))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # the scale of the embeddings does not matter (cosine similarity)
    assert contrastive_loss(3 * embeds, embeds, log_scale, ["x", "x"]).item() == pytest.approx(expected, rel=1e-5)


def _argv(tmp_path, *extra):
    return [
        "--output_dir",
        str(tmp_path / "clip"),
        "--shapes",
        "--num_shape_images",
        "16",
        "--train_batch_size",
        "8",
        "--max_train_steps",
        "3",
        "--lr_warmup_steps",
        "1",
        "--mixed_precision",
        "no",
        "--no_progress_bar",
        "--image_encoder_config",
        '{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "projection_dim": 16}',
        "--text_encoder_config",
        '{"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "projection_dim": 16}',
        *extra,
    ]


def _args(tmp_path, *extra):
    parser = build_clip_parser()
    return check_clip_training_arguments(parser, parser.parse_args(_argv(tmp_path, *extra)))


def test_a_tiny_run_writes_a_folder_that_clip_guidance_loads(tmp_path):
    folder = train_clip(_args(tmp_path), command="diffusers-glide train-clip --tiny")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "clip_image_encoder",
        "clip_text_encoder",
        "clip_tokenizer",
    ]
    image_config = json.loads((folder / "clip_image_encoder" / "config.json").read_text())
    assert image_config["image_size"] == 32 and image_config["num_train_timesteps"] == 1000
    # the learned temperature, moved from CLIP's initial 1 / 0.07 by 3 steps, never above CLIP's cap
    assert 10 < image_config["logit_scale"] <= MAX_LOGIT_SCALE and image_config["logit_scale"] != pytest.approx(
        1 / 0.07
    )
    card = (folder / "README.md").read_text()
    assert "diffusers-glide train-clip --tiny" in card and "3 steps of batch 8" in card and "chance 0.04" in card

    pipe = GlidePipeline.from_pretrained(embedded_model_path())
    pipe.set_progress_bar_config(disable=True)
    pipe.load_clip_guidance(folder)
    assert pipe.has_clip_guidance and len(pipe.clip_tokenizer) == pipe.clip_text_encoder.config.vocab_size
    out = pipe(
        "",
        clip_prompt="a red circle on a blue background",
        guidance_scale=1.0,
        clip_guidance_scale=3.0,
        num_inference_steps=2,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    assert out.images.shape == (1, 32, 32, 3)


def test_refuses_to_replace_a_folder_that_is_not_a_clip_folder(tmp_path):
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a noised-CLIP folder"):
        train_clip(_args(tmp_path))
    assert (tmp_path / "clip" / "notes.txt").read_text() == "mine"


def test_cli_argument_errors(capsys):
    assert main(["train-clip", "--output_dir", "x", "--train_batch_size", "1"]) == 2
    assert "--train_batch_size must be at least 2" in capsys.readouterr().err
    assert main(["train-clip", "--output_dir", "x", "--max_train_steps", "0"]) == 2
    assert "--max_train_steps must be positive, got 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--learning_rate", "inf", "--learning_rate must be a finite number in (0, 1], got inf"),
        ("--learning_rate", "1e10", "--learning_rate must be a finite number in (0, 1], got 1e+10"),
        ("--adam_weight_decay", "nan", "--adam_weight_decay must be a finite number in [0, 1], got nan"),
        ("--max_grad_norm", "-1", "--max_grad_norm must be a finite number in [0, inf), got -1"),
        ("--lr_warmup_steps", "-1", "--lr_warmup_steps must be at least 0, got -1"),
        ("--seed", str(2**32), f"argument --seed: expected an integer in [0, 2**32), got {2**32}"),
    ],
)
def test_optimizer_numbers_out_of_range_are_refused_before_training(tmp_path, capsys, flag, value, expected):
    # the tiny run's flags: without the check, the test trains 3 small steps and fails, rather than a long default run
    assert main(["train-clip", *_argv(tmp_path, f"{flag}={value}")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"diffusers-glide train-clip: error: {expected}"
    assert not (tmp_path / "clip").exists()


def test_a_nan_loss_stops_the_run_with_one_error_line_and_writes_nothing(tmp_path, capsys, monkeypatch):
    compute_loss = NoisedCLIPTrainer.compute_loss
    calls = []

    def compute_loss_then_nan(self, batch):
        calls.append(batch)
        return compute_loss(self, batch) * (float("nan") if len(calls) == 2 else 1.0)

    monkeypatch.setattr(NoisedCLIPTrainer, "compute_loss", compute_loss_then_nan)
    assert main(["train-clip", *_argv(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: The training loss is nan at step 2: training stopped")
    assert captured.err.count("\n") == 1 and "Saved" not in captured.out
    assert len(calls) == 2 and not (tmp_path / "clip").exists()


def test_weights_made_infinite_by_the_last_update_are_never_saved(tmp_path):
    poisoned = []

    def poison_third_update(optimizer, args, kwargs):
        poisoned.append(optimizer)
        if len(poisoned) == 3:  # the last of the 3 steps: its loss, computed before the update, is finite
            with torch.no_grad():
                optimizer.param_groups[0]["params"][0].view(-1)[0] = float("inf")

    handle = register_optimizer_step_post_hook(poison_third_update)
    try:
        with pytest.raises(FloatingPointError, match=r"^The weights hold NaN or infinite values after step 3 \(clip_"):
            train_clip(_args(tmp_path))
    finally:
        handle.remove()
    assert len(poisoned) == 3 and not (tmp_path / "clip").exists()
