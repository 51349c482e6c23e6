"""The noised-CLIP converter (`--model_type clip`): layout, CLI, full-size manifests, strictness."""

import json

import pytest
import torch
from conftest import REFERENCE_DIR, TOKENIZERS_DIR, clip_options, load_reference, max_abs_diff
from safetensors import safe_open
from transformers import CLIPTokenizer

from diffusers_glide import GlideCLIPImageEncoder, GlideCLIPTextEncoder, tokenize_clip_prompts
from diffusers_glide.cli import main as cli_main
from diffusers_glide.conversion import CheckpointMismatchError, convert_clip_checkpoints, convert_clip_state_dicts
from diffusers_glide.conversion.clip import CLIP_DEFAULTS, resolve_clip_options

IMAGE_PT, TEXT_PT = REFERENCE_DIR / "clip_image_enc.pt", REFERENCE_DIR / "clip_text_enc.pt"


def _meta_state_dict(manifest: dict) -> dict:
    return {key: torch.empty(spec["shape"], device="meta") for key, spec in manifest["keys"].items()}


def _fixture_state_dicts():
    return torch.load(IMAGE_PT, weights_only=True), torch.load(TEXT_PT, weights_only=True)


def test_converted_folder_layout(converted_clip_folder):
    names = sorted(path.name for path in converted_clip_folder.iterdir())
    assert names == ["README.md", "clip_image_encoder", "clip_text_encoder", "clip_tokenizer"]
    for name, class_name in (
        ("clip_image_encoder", "GlideCLIPImageEncoder"),
        ("clip_text_encoder", "GlideCLIPTextEncoder"),
    ):
        config = json.loads((converted_clip_folder / name / "config.json").read_text())
        assert config["_class_name"] == class_name
        assert (converted_clip_folder / name / "diffusion_pytorch_model.safetensors").is_file()
    tokenizer = CLIPTokenizer.from_pretrained(converted_clip_folder / "clip_tokenizer")
    assert len(tokenizer) == 49408
    card = (converted_clip_folder / "README.md").read_text()
    assert "pipe.load_clip_guidance(" in card and "clip_guidance_scale=3.0" in card


@pytest.mark.parametrize("model_type", ["clip_image_enc", "clip_text_enc"])
def test_full_size_manifests_convert_completely(model_type):
    manifest = json.loads((REFERENCE_DIR / "manifests" / f"{model_type}.json").read_text())
    assert CLIP_DEFAULTS == manifest["config"]  # our defaults are the released config.yaml
    meta = _meta_state_dict(manifest)
    # The other tower comes from the other manifest; both must convert with the default options.
    other = "clip_text_enc" if model_type == "clip_image_enc" else "clip_image_enc"
    other_meta = _meta_state_dict(json.loads((REFERENCE_DIR / "manifests" / f"{other}.json").read_text()))
    image_sd, text_sd = (meta, other_meta) if model_type == "clip_image_enc" else (other_meta, meta)
    image_encoder, text_encoder = convert_clip_state_dicts(image_sd, text_sd)
    model = image_encoder if model_type == "clip_image_enc" else text_encoder
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"]
    assert len(model.state_dict()) == manifest["num_tensors"]
    assert image_encoder.config.hidden_size == 768 and image_encoder.config.image_size == 64
    assert text_encoder.config.hidden_size == 512 and text_encoder.config.num_hidden_layers == 12


def test_checkpoints_are_recognised_in_either_order():
    forward = convert_clip_checkpoints([IMAGE_PT, TEXT_PT], TOKENIZERS_DIR, clip_options())
    backward = convert_clip_checkpoints([TEXT_PT, IMAGE_PT], TOKENIZERS_DIR, clip_options())
    for a, b in ((forward.image_encoder, backward.image_encoder), (forward.text_encoder, backward.text_encoder)):
        assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_wrong_checkpoint_sets_are_rejected():
    with pytest.raises(CheckpointMismatchError, match=r"hold 2 image and 0 text encoder\(s\)"):
        convert_clip_checkpoints([IMAGE_PT, IMAGE_PT], TOKENIZERS_DIR, clip_options())
    with pytest.raises(CheckpointMismatchError, match=r"hold 0 image and 0 text encoder\(s\)"):
        convert_clip_checkpoints([REFERENCE_DIR / "base.pt", REFERENCE_DIR / "base.pt"], TOKENIZERS_DIR)
    with pytest.raises(ValueError, match=r"two checkpoints, clip_image_enc.pt and clip_text_enc.pt; got 1"):
        convert_clip_checkpoints([IMAGE_PT], TOKENIZERS_DIR, clip_options())


def test_unknown_missing_and_misshaped_keys_are_listed():
    image_sd, text_sd = _fixture_state_dicts()
    extra = dict(text_sd, **{"blocks.block_0.f_attn.f_z.w": torch.zeros(16, 16), "blocks.extra": torch.zeros(1)})
    with pytest.raises(
        CheckpointMismatchError, match=r"2 key\(s\) of the clip text encoder.*blocks.block_0.f_attn.f_z.w"
    ):
        convert_clip_state_dicts(image_sd, extra, clip_options())
    missing = {k: v for k, v in image_sd.items() if k != "blocks.block_1.f_mlp.f_2.b"}
    with pytest.raises(
        CheckpointMismatchError, match=r"clip image encoder parameter\(s\) not found.*layers.1.mlp.2.bias"
    ):
        convert_clip_state_dicts(missing, text_sd, clip_options())
    # The released options on the tiny checkpoints: every tower is the wrong size.
    with pytest.raises(
        CheckpointMismatchError,
        match=r"shape mismatch.*timestep_embedding.weight \(checkpoint \(1000, 48\), model \(1000, 768\)\)",
    ):
        convert_clip_state_dicts(image_sd, text_sd)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown noised-CLIP option\(s\) \['n_layers'\]"):
        resolve_clip_options({"n_layers": 3})


def test_cli_converts_the_clip_in_float16(tmp_path, capsys):
    # in this process: the script is `diffusers-glide convert` (its real runs are in test_convert*.py)
    dump = tmp_path / "glide-clip"
    command = ["convert", "--model_type", "clip", "--checkpoint_path", str(TEXT_PT), str(IMAGE_PT)]
    command += ["--options_json", str(REFERENCE_DIR / "clip.config.json"), "--vocab_dir", str(TOKENIZERS_DIR)]
    command += ["--dump_path", str(dump), "--dtype", "float16"]
    assert cli_main(command) == 0
    out = capsys.readouterr().out
    assert "clip image encoder 111,600" in out and "float16" in out
    with safe_open(str(dump / "clip_image_encoder" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    image_encoder = GlideCLIPImageEncoder.from_pretrained(dump, subfolder="clip_image_encoder", dtype=torch.float32)
    text_encoder = GlideCLIPTextEncoder.from_pretrained(dump, subfolder="clip_text_encoder", dtype=torch.float32)
    ref, info = load_reference("clip.forward")
    input_ids, mask = tokenize_clip_prompts(CLIPTokenizer.from_pretrained(dump / "clip_tokenizer"), info["prompts"])
    assert torch.equal(input_ids, ref["text_tokens"]) and mask.sum(1).tolist() == ref["text_lens"].tolist()
    with torch.no_grad():
        text = text_encoder(input_ids, attention_mask=mask).text_embeds
        image = image_encoder(ref["images"], ref["image_timesteps"]).image_embeds
    assert max_abs_diff(text, ref["text_emb_unnormalized"]) <= 0.02  # float16 rounding of the weights only
    assert max_abs_diff(image, ref["image_emb_unnormalized"]) <= 0.02
