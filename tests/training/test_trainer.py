"""Smoke tests of the training loop on tiny models and a handful of generated images."""

import contextlib
import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file, save_file
from torch.optim.optimizer import register_optimizer_step_post_hook

from diffusers_glide import GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline
from diffusers_glide.training import GlideTrainer, parse_training_args, train
from diffusers_glide.training.trainer import STATE_FILE, _resolve_resume_path, list_checkpoints, pyramid_noise

TINY = [
    "--shapes",
    "--num_shape_images", "8",
    "--train_batch_size", "4",
    "--resolution", "16",
    "--unet_config",
    '{"block_out_channels": [16, 32], "attention_levels": [false, true], "norm_num_groups": 8, "attention_head_dim": 16}',
    "--text_encoder_config", '{"hidden_size": 32, "num_attention_heads": 2, "num_hidden_layers": 1}',
    "--sample_steps", "0",
    "--checkpointing_steps", "0",
    "--no_progress_bar",
]  # fmt: skip


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    # tests that drive GlideTrainer directly (not through `train`) leave accelerate's per-process state behind
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _args(output_dir, *extra):
    return parse_training_args(["--output_dir", str(output_dir), *TINY, *extra])


def _weights(folder):
    return {
        **{f"unet.{k}": v for k, v in load_file(folder / "unet" / "diffusion_pytorch_model.safetensors").items()},
        **{
            f"text.{k}": v
            for k, v in load_file(folder / "text_encoder" / "diffusion_pytorch_model.safetensors").items()
        },
    }


def test_loss_decreases_on_a_fixed_batch(tmp_path):
    # 4 images, batch 4: every step sees the same batch; the loss is measured at fixed timesteps and noise.
    args = _args(tmp_path, "--num_shape_images", "4", "--learning_rate", "2e-3", "--caption_dropout", "0")
    trainer = GlideTrainer(args)
    trainer._prepare()
    batch = next(iter(trainer.dataloader))
    generator = torch.Generator().manual_seed(0)
    timesteps = torch.randint(0, 1000, (4,), generator=generator)
    noise = torch.randn(4, 3, 16, 16, generator=generator)

    def fixed_loss():
        with torch.no_grad():
            return trainer.compute_loss(batch, timesteps=timesteps, noise=noise).loss.mean().item()

    before = fixed_loss()
    trainer.args.max_train_steps = 25
    trainer.train()
    after = fixed_loss()
    assert torch.isfinite(torch.tensor([before, after])).all()
    assert after < 0.7 * before, (before, after)


def test_resume_continues_from_the_saved_step(tmp_path, monkeypatch):
    straight = train(_args(tmp_path / "straight", "--max_train_steps", "4"))
    first = _args(tmp_path / "resumed", "--max_train_steps", "2", "--checkpointing_steps", "2")
    train(first)
    assert [p.name for p in list_checkpoints(tmp_path / "resumed")] == ["checkpoint-2"]
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "checkpoint-2" / "training_state.json").read_text())
    assert state == {"global_step": 2}
    # accelerate's files and ours (the EMA as safetensors + JSON): no custom_checkpoint_0.pkl
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints" / "checkpoint-2").iterdir()) == [
        "ema.json",
        "ema.safetensors",
        "model.safetensors",
        "model_1.safetensors",
        "optimizer.bin",
        "random_states_0.pkl",
        "scheduler.bin",
        "training_state.json",
    ]

    # every pickle-based file is read with weights_only=True, ours to check it first and accelerate's to load it
    loads, torch_load = [], torch.load

    def recording_load(f, *args, **kwargs):
        loads.append((Path(f).name, kwargs.get("weights_only")))
        return torch_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    trainer = GlideTrainer(_args(tmp_path / "resumed", "--max_train_steps", "4", "--resume_from_checkpoint", "latest"))
    resumed = trainer.train()
    assert trainer.global_step == 4
    assert sorted(set(loads)) == [(name, True) for name in ("optimizer.bin", "random_states_0.pkl", "scheduler.bin")]
    # same data order, noise and optimizer state: the interrupted run ends where the straight one does
    expected, actual = _weights(straight), _weights(resumed)
    assert expected.keys() == actual.keys()
    worst = max((expected[k] - actual[k]).abs().max().item() for k in expected)
    assert worst < 1e-5, worst


def test_saved_pipeline_loads_and_samples(tmp_path):
    folder = train(_args(tmp_path, "--max_train_steps", "2", "--sample_steps", "1", "--sample_respacing", "2"))
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-0000001.png", "step-0000002.png"]
    readme = (folder / "README.md").read_text()
    assert "--max_train_steps" not in readme  # no command given -> none recorded
    assert "pipeline_tag: text-to-image" in readme and 'GlidePipeline.from_pretrained("path/to/this/folder")' in readme
    pipe = GlidePipeline.from_pretrained(folder)
    image = pipe("a red circle on a blue background", num_inference_steps=2, output_type="np").images
    assert image.shape == (1, 16, 16, 3) and 0 <= image.min() and image.max() <= 1
    # the saved weights are the EMA weights, not the last raw ones
    raw = GlideTrainer(_args(tmp_path / "no-ema", "--max_train_steps", "2", "--ema_decay", "0"))
    raw_folder = raw.train()
    assert any((_weights(folder)[k] - v).abs().max() > 0 for k, v in _weights(raw_folder).items())


@pytest.mark.parametrize(
    "model_type, pipeline_class",
    [
        ("upsample", GlideUpsamplePipeline),
        ("base-inpaint", GlideInpaintPipeline),
        ("upsample-inpaint", GlideUpsamplePipeline),
    ],
)
def test_every_variant_trains_and_samples(tmp_path, model_type, pipeline_class):
    folder = train(
        _args(
            tmp_path,
            "--model_type",
            model_type,
            "--max_train_steps",
            "2",
            "--sample_steps",
            "2",
            "--sample_respacing",
            "2",
        )
    )
    pipe = pipeline_class.from_pretrained(folder)
    assert pipe.unet.config.super_resolution == model_type.startswith("upsample")
    assert pipe.unet.config.inpainting == model_type.endswith("inpaint")
    assert (tmp_path / "samples" / "step-0000002.png").is_file()


def test_fine_tune_a_base_model_into_an_inpainting_model_with_a_frozen_text_encoder(tmp_path):
    base = train(_args(tmp_path / "base", "--max_train_steps", "1"))
    folder = train(
        parse_training_args(
            [
                "--output_dir", str(tmp_path / "inpaint"), "--pretrained_model", str(base), "--model_type", "base-inpaint",
                "--shapes", "--num_shape_images", "8", "--train_batch_size", "4", "--max_train_steps", "2",
                "--freeze_text_encoder", "--mixed_precision", "bf16", "--gradient_checkpointing",
                "--sample_steps", "0", "--checkpointing_steps", "0", "--no_progress_bar",
            ]
        ),
        command="diffusers-glide train ...",
    )  # fmt: skip
    pipe = GlideInpaintPipeline.from_pretrained(folder)
    assert pipe.unet.config.inpainting and pipe.unet.conv_in.in_channels == 7
    base_text = load_file(base / "text_encoder" / "diffusion_pytorch_model.safetensors")
    tuned_text = load_file(folder / "text_encoder" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(base_text[k], tuned_text[k]) for k in base_text)  # frozen
    assert "diffusers-glide train ..." in (folder / "README.md").read_text()


def test_noise_offset_shifts_each_channel_of_the_training_noise(tmp_path):
    trainer = GlideTrainer(
        _args(tmp_path, "--num_shape_images", "64", "--train_batch_size", "64", "--noise_offset", "0.5")
    )
    trainer._prepare()
    captured = {}
    add_noise = trainer.loss_fn.add_noise

    def spy(images, noise, timesteps):
        captured["noise"] = noise
        return add_noise(images, noise, timesteps)

    trainer.loss_fn.add_noise = spy
    with torch.no_grad():
        trainer.compute_loss(next(iter(trainer.dataloader)))
    channel_means = captured["noise"].mean(dim=(2, 3))  # (64, 3); std 1/16 without the offset
    assert 0.35 < channel_means.std().item() < 0.65, channel_means.std()


def test_pyramid_noise_adds_coarse_noise_at_unit_variance():
    generator = torch.Generator().manual_seed(0)
    white = torch.randn(64, 3, 32, 32, generator=generator)
    torch.manual_seed(1)
    pyramid = pyramid_noise(white, 0.8)
    assert pyramid.shape == white.shape
    torch.testing.assert_close(pyramid.flatten(1).std(dim=1), torch.ones(64))
    # white noise averaged over 8x8 blocks keeps 1/64 of its variance; coarse noise keeps most of its own
    blocks = torch.nn.functional.avg_pool2d
    assert blocks(white, 8).var().item() < 0.03  # 1/64 = 0.016
    assert blocks(pyramid, 8).var().item() > 0.15  # measured 0.26
    assert pyramid_noise(torch.randn(2, 3, 16, 8), 0.5).shape == (2, 3, 16, 8)  # not square, not a power of two


def test_shapes_position_prob_reaches_the_dataset(tmp_path):
    trainer = GlideTrainer(_args(tmp_path, "--num_shape_images", "64", "--shapes_position_prob", "1.0"))
    assert all(trainer.dataset.scene(i).position is not None for i in range(64))
    trainer = GlideTrainer(_args(tmp_path / "none", "--num_shape_images", "64", "--shapes_position_prob", "0"))
    assert all(trainer.dataset.scene(i).position is None for i in range(64))


def test_argument_and_resume_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_training_args(["--output_dir", str(tmp_path), "--caption_dropout", "1.5"])
    assert "must be between 0 and 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_training_args(["--output_dir", str(tmp_path), "--shapes", "--train_data_dir", str(tmp_path)])
    with pytest.raises(SystemExit):
        parse_training_args(["--output_dir", str(tmp_path), "--unet_config", "{not json"])
    assert "invalid JSON" in capsys.readouterr().err
    for flag, value, interval in (
        ("--shapes_position_prob", "1.5", "[0, 1]"),
        ("--snr_floor", "-1", "[0, inf)"),
        ("--timestep_bias_portion", "2", "[0, 1]"),
        ("--timestep_bias_multiplier", "0", "(0, inf)"),
        ("--pyramid_noise_discount", "1", "[0, 1)"),
    ):
        with pytest.raises(SystemExit):
            parse_training_args(["--output_dir", str(tmp_path), flag, value])
        assert f"{flag} must be a finite number in {interval}, got {value}" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="is not a checkpoint folder written by this trainer"):
        train(_args(tmp_path, "--max_train_steps", "1", "--resume_from_checkpoint", str(tmp_path / "nope")))


def test_a_low_res_residual_upsampler_must_predict_x0(tmp_path):
    # TINY's preset ("tiny") predicts epsilon: adding the low-res image to an epsilon prediction is refused.
    unet = (
        '{"block_out_channels": [16, 32], "attention_levels": [false, true], "norm_num_groups": 8, '
        '"attention_head_dim": 16, "low_res_residual": true}'
    )
    args = _args(tmp_path, "--model_type", "upsample", "--max_train_steps", "1", "--unet_config", unet)
    with pytest.raises(
        ValueError, match=r"predicts x0 \(`low_res_residual=True`\) but the scheduler has prediction_type='epsilon'"
    ):
        train(args)
    assert not (tmp_path / "unet").exists()


def _caption_folder(folder, layout):
    import PIL.Image

    folder.mkdir()
    colors = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0), "white": (255, 255, 255)}
    lines = []
    for name, rgb in colors.items():
        PIL.Image.new("RGB", (24, 20), rgb).save(folder / f"{name}.png")
        if layout == "txt":
            (folder / f"{name}.txt").write_text(f"a {name} picture")
        else:
            lines.append(json.dumps({"file_name": f"{name}.png", "text": f"a {name} picture"}))
    if lines:
        (folder / "metadata.jsonl").write_text("\n".join(lines))
    return folder


@pytest.mark.parametrize("source", ["--train_data_dir", "--dataset_name"])
def test_trains_on_a_caption_folder_and_on_a_datasets_imagefolder(tmp_path, source):
    # --dataset_name with a local folder goes through `datasets.load_dataset` (its imagefolder builder)
    data = _caption_folder(tmp_path / "data", "txt" if source == "--train_data_dir" else "jsonl")
    args = [a for a in TINY if a not in ("--shapes",)]
    args = args[: args.index("--num_shape_images")] + args[args.index("--num_shape_images") + 2 :]
    folder = train(
        parse_training_args(
            ["--output_dir", str(tmp_path / "out"), source, str(data), "--max_train_steps", "2", *args]
        )
    )
    pipe = GlidePipeline.from_pretrained(folder)
    # the word-level tokenizer was built from the captions' words
    assert {"a", "red", "blue", "green", "white", "picture"} <= set(pipe.tokenizer.get_vocab())
    image = pipe("a red picture", num_inference_steps=2, output_type="np").images
    assert image.shape == (1, 16, 16, 3)


# ---------------------------------------------------------------------------------------------------------------
# Output folders: nothing lost, nothing half-written


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)


def test_a_pipeline_folder_that_cannot_be_replaced_fails_before_training(tmp_path):
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"Refusing to replace .*pipeline: it is not empty and not a GLIDE"):
        GlideTrainer(_args(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline"]  # nothing trained, nothing written
    # fine-tuning the pipeline that the run would replace at its end
    args = _args(tmp_path / "run", "--pretrained_model", str(tmp_path / "run" / "pipeline"))
    with pytest.raises(ValueError, match=r"Refusing to write the output folder .*run/pipeline: it is the input"):
        GlideTrainer(args)


def test_unfinished_checkpoints_are_never_resumed(tmp_path):
    folder = tmp_path / "checkpoints"
    for name, step in [("checkpoint-2", 2), ("checkpoint-4", None), (f".checkpoint-6.staging-{_dead_pid()}-0a1b", 6)]:
        (folder / name).mkdir(parents=True)
        (folder / name / "model.safetensors").write_bytes(b"")
        if step is not None:
            (folder / name / STATE_FILE).write_text(json.dumps({"global_step": step}))
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2"]
    args = _args(tmp_path, "--resume_from_checkpoint", "latest")
    assert _resolve_resume_path(args) == folder / "checkpoint-2"


def test_a_failed_checkpoint_save_leaves_no_checkpoint(tmp_path, monkeypatch):
    trainer = GlideTrainer(_args(tmp_path))
    trainer._prepare()
    save_state = trainer.accelerator.save_state

    def save_half_then_fail(path):
        (tmp_path / "staging-seen").write_text(path)
        save_state(path)
        raise OSError("disk full")

    monkeypatch.setattr(trainer.accelerator, "save_state", save_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    assert ".checkpoint-0.staging-" in (tmp_path / "staging-seen").read_text()
    assert list((tmp_path / "checkpoints").iterdir()) == []
    monkeypatch.setattr(trainer.accelerator, "save_state", save_state)
    trainer.save_checkpoint()
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["checkpoint-0"]
    assert json.loads((tmp_path / "checkpoints" / "checkpoint-0" / STATE_FILE).read_text()) == {"global_step": 0}


def test_training_cleans_up_after_killed_runs(tmp_path):
    earlier = train(_args(tmp_path / "earlier", "--max_train_steps", "1"))
    out = tmp_path / "out"
    dead = _dead_pid()
    # a run killed while replacing its pipeline (moved aside) and one killed while saving a checkpoint
    out.mkdir()
    shutil.copytree(earlier, out / f".pipeline.old-{dead}-0a1b2c3d")
    (out / "checkpoints" / f".checkpoint-2.staging-{dead}-0a1b2c3d").mkdir(parents=True)
    folder = train(_args(out, "--max_train_steps", "1"))
    assert sorted(p.name for p in out.iterdir()) == ["checkpoints", "pipeline", "training_args.json"]
    assert list((out / "checkpoints").iterdir()) == []
    assert GlidePipeline.from_pretrained(folder).unet.config.sample_size == 16


def test_random_crops_train_an_upsampler_on_crops_of_its_images(tmp_path, monkeypatch):
    from diffusers_glide.training import trainer as trainer_module
    from diffusers_glide.training.trainer import random_crops

    images = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6)
    crops = random_crops(images, 4, torch.Generator().manual_seed(0))
    assert crops.shape == (2, 1, 4, 4)
    for image, crop in zip(images, crops, strict=True):  # each crop is a contiguous window of its own image
        top, left = divmod(int(crop[0, 0, 0]) - int(image[0, 0, 0]), 6)
        assert torch.equal(crop, image[:, top : top + 4, left : left + 4])

    seen = {}
    original = trainer_module.conditioning_inputs

    def spy(unet, batch_images, low_res_size, mask_type, generator=None):
        seen.update(shape=tuple(batch_images.shape), low_res_size=low_res_size)
        return original(unet, batch_images, low_res_size, mask_type, generator)

    monkeypatch.setattr(trainer_module, "conditioning_inputs", spy)
    args = _args(
        tmp_path, "--model_type", "upsample", "--resolution", "32", "--crop_size", "16", "--max_train_steps", "1"
    )
    path = train(args)
    assert seen == {"shape": (4, 3, 16, 16), "low_res_size": 4}  # a 16 crop of a 32 image, 4x: 4 pixels low-res
    assert GlideUpsamplePipeline.from_pretrained(path).unet.config.sample_size == 32  # the model keeps its size

    for bad, message in (("10", "a multiple of 4"), ("64", r"at most the resolution \(32\)")):
        with pytest.raises(ValueError, match=message):
            GlideTrainer(_args(tmp_path / bad, "--model_type", "upsample", "--resolution", "32", "--crop_size", bad))


# ---------------------------------------------------------------------------------------------------------------
# Numbers: no optimizer setting and no training step may produce (and save) a NaN model


@pytest.mark.parametrize(
    "flag, value, interval, shown",
    [
        ("--learning_rate", "inf", "(0, 1]", "inf"),
        ("--learning_rate", "1e10", "(0, 1]", "1e+10"),
        ("--learning_rate", "nan", "(0, 1]", "nan"),
        ("--learning_rate", "0", "(0, 1]", "0"),
        ("--learning_rate", "-1e-4", "(0, 1]", "-0.0001"),
        ("--adam_beta1", "1", "[0, 1)", "1"),
        ("--adam_beta2", "1.0000001", "[0, 1)", "1.0000001"),
        ("--adam_epsilon", "0", "(0, inf)", "0"),
        ("--adam_epsilon", "inf", "(0, inf)", "inf"),
        ("--adam_weight_decay", "-0.1", "[0, 1]", "-0.1"),
        ("--adam_weight_decay", "1e3", "[0, 1]", "1000"),
        ("--max_grad_norm", "nan", "[0, inf)", "nan"),
        ("--max_grad_norm", "-1", "[0, inf)", "-1"),
        ("--vb_weight", "inf", "[0, inf)", "inf"),
        ("--noise_offset", "-0.1", "[0, inf)", "-0.1"),
    ],
)
def test_optimizer_numbers_out_of_range_are_refused_before_training(tmp_path, capsys, flag, value, interval, shown):
    from diffusers_glide.cli import main

    output_dir = tmp_path / "run"
    assert main(["train", "--output_dir", str(output_dir), *TINY, "--max_train_steps", "1", f"{flag}={value}"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"diffusers-glide train: error: {flag} must be a finite number in {interval}, got {shown}"
    assert not output_dir.exists()  # nothing was trained or written


@pytest.mark.parametrize("seed", [str(2**32), "-1", "2**70"])
def test_a_seed_numpy_cannot_take_is_a_usage_error(tmp_path, capsys, seed):
    from diffusers_glide.cli import main

    output_dir = tmp_path / "run"
    assert main(["train", "--output_dir", str(output_dir), *TINY, "--max_train_steps", "1", f"--seed={seed}"]) == 2
    shown = repr(seed) if seed == "2**70" else seed
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"diffusers-glide train: error: argument --seed: expected an integer in [0, 2**32), got {shown}"
    assert not output_dir.exists()


def test_optimizer_numbers_at_the_ends_of_their_ranges_are_accepted(tmp_path):
    edges = ["--learning_rate", "1", "--adam_beta1", "0", "--adam_weight_decay", "1", "--max_grad_norm", "0"]
    args = _args(tmp_path, *edges, "--vb_weight", "0", "--noise_offset", "0", "--lr_warmup_steps", "0")
    assert (args.learning_rate, args.adam_beta1, args.adam_weight_decay, args.max_grad_norm) == (1.0, 0.0, 1.0, 0.0)


def _nan_loss_at_step(monkeypatch, step):
    """The trainer's loss becomes NaN at `step` (one micro-batch per step in these tests)."""
    compute_loss = GlideTrainer.compute_loss
    calls = []

    def compute_loss_then_nan(self, batch, **kwargs):
        losses = compute_loss(self, batch, **kwargs)
        calls.append(batch)
        if len(calls) == step:
            losses.loss = losses.loss * float("nan")
        return losses

    monkeypatch.setattr(GlideTrainer, "compute_loss", compute_loss_then_nan)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = ["--max_train_steps", "4", "--checkpointing_steps", "2", "--sample_steps", "1", "--sample_respacing", "2"]
    _nan_loss_at_step(monkeypatch, 3)
    with pytest.raises(FloatingPointError, match=r"^The training loss is nan at step 3: training stopped, nothing"):
        train(_args(tmp_path, *run))
    # nothing after step 2: no checkpoint, no sample grid, no pipeline
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["step-0000001.png", "step-0000002.png"]
    assert not (tmp_path / "pipeline").exists()

    monkeypatch.undo()
    trainer = GlideTrainer(_args(tmp_path, *run, "--resume_from_checkpoint", "latest"))
    folder = trainer.train()
    assert trainer.global_step == 4
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-4"]
    assert all(torch.isfinite(v).all() for v in _weights(folder).values())


@contextlib.contextmanager
def weights_poisoned_after_update(update):
    """After the `update`-th optimizer step, the optimizer's first weight tensor holds an infinity (the loss of that
    step, computed before the update, is still finite)."""
    count = 0

    def poison(optimizer, args, kwargs):
        nonlocal count
        count += 1
        if count == update:
            with torch.no_grad():
                optimizer.param_groups[0]["params"][0].view(-1)[0] = float("inf")

    handle = register_optimizer_step_post_hook(poison)
    try:
        yield
    finally:
        handle.remove()


@pytest.mark.parametrize("written", ["checkpoint", "pipeline"])
def test_weights_made_infinite_by_an_update_are_never_saved(tmp_path, written):
    extra = ("--checkpointing_steps", "2") if written == "checkpoint" else ()
    with weights_poisoned_after_update(2), pytest.raises(FloatingPointError) as error:
        train(_args(tmp_path, "--max_train_steps", "2", *extra))
    message = str(error.value)
    assert message.startswith("The weights hold NaN or infinite values after step 2 (unet.")
    assert "EMA unet." in message and f"training stopped without writing the {written}" in message
    assert list_checkpoints(tmp_path) == [] and not (tmp_path / "pipeline").exists()


def test_a_nan_loss_through_the_command_line_is_one_error_line(tmp_path, capsys, monkeypatch):
    from diffusers_glide.cli import main

    _nan_loss_at_step(monkeypatch, 1)
    assert main(["train", "--output_dir", str(tmp_path), *TINY, "--max_train_steps", "2"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: The training loss is nan at step 1: training stopped")
    assert captured.err.count("\n") == 1 and "Saved the trained pipeline" not in captured.out
    assert not (tmp_path / "pipeline").exists()


# ---------------------------------------------------------------------------------------------------------------
# Resuming never runs code from a checkpoint


class _Payload:
    """Unpickling this creates the file `marker`: a stand-in for whatever code a pickle can run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_payload(path, marker, archive: bool):
    """A pickle whose unpickling creates `marker`: as a torch.save archive (what accelerate's .bin/.pkl files are)
    or as a bare pickle."""
    if archive:
        torch.save({"state": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"state": _Payload(marker)}))


@pytest.fixture(scope="module")
def one_step_checkpoint(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("one-step")
    train(_args(output_dir, "--max_train_steps", "1", "--checkpointing_steps", "1"))
    return output_dir / "checkpoints" / "checkpoint-1"


def _resume_through_the_cli(tmp_path, checkpoint, capsys):
    from diffusers_glide.cli import main

    output_dir = tmp_path / "out"
    shutil.copytree(checkpoint, output_dir / "checkpoints" / checkpoint.name)
    resume = ["--max_train_steps", "2", "--resume_from_checkpoint", "latest"]
    code = main(["train", "--output_dir", str(output_dir), *TINY, *resume])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert not (output_dir / "pipeline").exists()
    return err


@pytest.mark.parametrize(
    "name, archive, message",
    [
        (
            "custom_checkpoint_0.pkl",  # what accelerate unpickled with weights_only=False: the payload ran
            True,
            r"error: Cannot resume from \S+checkpoint-1: it was written by an earlier version of diffusers-glide, "
            r"which saved the EMA weights as a pickle \(custom_checkpoint_0\.pkl\); loading it means unpickling it",
        ),
        (
            "optimizer.bin",
            True,
            r"error: Refusing to load \S+checkpoint-1/optimizer\.bin: it holds objects other than tensors and plain "
            r"values, which torch\.load\(weights_only=True\) does not unpickle \(",
        ),
        (
            "random_states_0.pkl",
            True,
            r"error: Refusing to load \S+checkpoint-1/random_states_0\.pkl: it holds objects other than tensors",
        ),
        (
            "scheduler.bin",
            False,
            r"error: Refusing to load \S+checkpoint-1/scheduler\.bin: it is not a torch\.save archive \(a zip file\)",
        ),
        (
            "pytorch_model.bin",
            True,
            r"error: Refusing to resume from \S+checkpoint-1: it holds 'pytorch_model\.bin', which is not a file this "
            r"trainer writes \(a checkpoint holds only the files model\[_N\]\.safetensors, optimizer\.bin",
        ),
    ],
)
def test_resume_refuses_a_pickle_payload_without_running_it(
    tmp_path, capsys, one_step_checkpoint, name, archive, message
):
    # the payload is live: unpickled without weights_only, it creates its marker
    control = tmp_path / "control-ran"
    _write_payload(tmp_path / "control", control, archive)
    with open(tmp_path / "control", "rb") as f:
        (torch.load(f, weights_only=False) if archive else pickle.load(f))["state"].close()
    assert control.is_file()

    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(one_step_checkpoint, checkpoint)
    marker = tmp_path / "payload-ran"
    _write_payload(checkpoint / name, marker, archive)
    err = _resume_through_the_cli(tmp_path, checkpoint, capsys)
    assert re.match(message, err), err
    assert not marker.exists()


def test_random_states_that_accelerate_cannot_restore_are_an_error(tmp_path, capsys, one_step_checkpoint):
    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(one_step_checkpoint, checkpoint)
    states = torch.load(checkpoint / "random_states_0.pkl", weights_only=False)
    # a safe file, but its torch state has the wrong size: accelerate only logs "Could not load random states"
    torch.save({**states, "torch_manual_seed": torch.zeros(5, dtype=torch.uint8)}, checkpoint / "random_states_0.pkl")
    err = _resume_through_the_cli(tmp_path, checkpoint, capsys)
    assert re.match(
        r"error: Cannot resume from \S+checkpoint-1: accelerate could not restore the random generators from "
        r"random_states_0\.pkl, so the run would not continue as it would have without the interruption\.$",
        err,
    ), err


def _drop_one_ema_weight(checkpoint):
    shadows = load_file(checkpoint / "ema.safetensors")
    del shadows["unet.conv_in.weight"]
    save_file(shadows, checkpoint / "ema.safetensors")


def _nan_ema_decay(checkpoint):
    settings = json.loads((checkpoint / "ema.json").read_text())
    (checkpoint / "ema.json").write_text(json.dumps({**settings, "decay": float("nan")}))  # written as NaN


@pytest.mark.parametrize(
    "tamper, message",
    [
        (
            _drop_one_ema_weight,
            r"error: Cannot resume from \S+checkpoint-1: ema\.safetensors follows other weights than this run trains "
            r"\(1 missing, e\.g\. \['unet\.conv_in\.weight'\]; 0 unexpected",
        ),
        (
            _nan_ema_decay,
            r"error: Cannot resume from \S+checkpoint-1: ema\.json is not valid JSON: NaN is not a number",
        ),
    ],
)
def test_an_ema_state_that_does_not_fit_the_run_is_refused(tmp_path, capsys, one_step_checkpoint, tamper, message):
    checkpoint = tmp_path / "checkpoint-1"
    shutil.copytree(one_step_checkpoint, checkpoint)
    tamper(checkpoint)
    err = _resume_through_the_cli(tmp_path, checkpoint, capsys)
    assert re.match(message, err), err
