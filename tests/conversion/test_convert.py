"""The OpenAI -> diffusers converter: folder layout, CLI, full-size key manifests, strictness, atomic writes."""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch
from conftest import (
    MODEL_TYPES,
    REFERENCE_DIR,
    REPO_ROOT,
    TOKENIZERS_DIR,
    load_reference,
    max_abs_diff,
    reference_options,
)
from safetensors import safe_open

import diffusers_glide
from diffusers_glide import GlideScheduler, GlideTextEncoder, GlideUNet2DModel
from diffusers_glide.conversion import (
    CheckpointMismatchError,
    convert_glide_checkpoint,
    convert_state_dict,
    default_options,
    load_openai_checkpoint,
    write_pipeline_folder,
)
from diffusers_glide.variants import get_variant

SCRIPT = REPO_ROOT / "convert_scripts" / "convert_glide_to_diffusers.py"
EXPECTED_PIPELINE = {
    "base": "GlidePipeline",
    "upsample": "GlideUpsamplePipeline",
    "base-inpaint": "GlideInpaintPipeline",
    "upsample-inpaint": "GlideUpsamplePipeline",
}
# OpenAI's notebooks: base stages 100 ancestral steps, upsampler "fast27" DDIM, the inpaint notebook's
# upsampler "fast27" ancestral.
EXPECTED_SCHEDULER = {
    "base": ("100", "ddpm", "squaredcos_cap_v2"),
    "upsample": ("fast27", "ddim", "linear"),
    "base-inpaint": ("100", "ddpm", "squaredcos_cap_v2"),
    "upsample-inpaint": ("fast27", "ddpm", "linear"),
}


def _meta_state_dict(manifest: dict) -> dict:
    return {key: torch.empty(spec["shape"], device="meta") for key, spec in manifest["keys"].items()}


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_converted_folder_layout(converted_folders, model_type):
    folder = converted_folders[model_type]
    model_index = json.loads((folder / "model_index.json").read_text())
    assert model_index["_class_name"] == EXPECTED_PIPELINE[model_type]
    assert model_index["unet"] == ["diffusers_glide.models.glide_unet", "GlideUNet2DModel"]
    assert model_index["text_encoder"] == ["diffusers_glide.models.glide_text_encoder", "GlideTextEncoder"]
    assert model_index["scheduler"] == ["diffusers_glide.schedulers.scheduling_glide", "GlideScheduler"]
    assert model_index["tokenizer"][0] == "transformers"
    for sub in ("unet", "text_encoder"):
        assert (folder / sub / "config.json").is_file()
        assert (folder / sub / "diffusion_pytorch_model.safetensors").is_file()
    scheduler = GlideScheduler.from_pretrained(folder, subfolder="scheduler")
    respacing, sampler, schedule = EXPECTED_SCHEDULER[model_type]
    assert (scheduler.config.timestep_respacing, scheduler.config.sampler) == (respacing, sampler)
    assert scheduler.config.beta_schedule == schedule
    card = (folder / "README.md").read_text()
    assert "license: mit" in card and "library_name: diffusers" in card and EXPECTED_PIPELINE[model_type] in card
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging folder left
    # written by the pipeline's own save_pretrained, and loaded back by its class
    pipeline = getattr(diffusers_glide, EXPECTED_PIPELINE[model_type]).from_pretrained(folder)
    assert type(pipeline).__name__ == EXPECTED_PIPELINE[model_type]
    assert pipeline.scheduler.config.timestep_respacing == respacing and pipeline.tokenizer is not None


def test_cli_converts_with_options_and_float16(tmp_path):
    dump = tmp_path / "glide-upsample"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--checkpoint_path",
            str(REFERENCE_DIR / "upsample.pt"),
            "--model_type",
            "upsample",
            "--options_json",
            str(REFERENCE_DIR / "upsample.options.json"),
            "--vocab_dir",
            str(TOKENIZERS_DIR),
            "--dump_path",
            str(dump),
            "--dtype",
            "float16",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Converted" in result.stdout and "float16" in result.stdout
    with safe_open(str(dump / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    unet = GlideUNet2DModel.from_pretrained(dump, subfolder="unet", dtype=torch.float32)
    text_encoder = GlideTextEncoder.from_pretrained(dump, subfolder="text_encoder", dtype=torch.float32)
    ref, _ = load_reference("upsample.forward")
    with torch.no_grad():
        states = text_encoder(ref["tokens"], attention_mask=ref["mask"]).last_hidden_state
        out = unet(ref["x"], ref["timesteps"], states, low_res=ref["low_res"]).sample
    assert max_abs_diff(out, ref["out"]) <= 0.02  # float16 rounding of the weights only


def _script():
    """The conversion script as a module: its `main(argv)` runs in this process (a real run of the script is in
    test_cli_converts_with_options_and_float16 and test_convert_errors.py)."""
    spec = importlib.util.spec_from_file_location("convert_glide_to_diffusers", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_cli_argument_errors(tmp_path, capsys):
    script = _script()
    base = ["--checkpoint_path", "x.pt", "--model_type", "base", "--vocab_dir", "v"]

    def error(argv) -> str:
        assert script.main(argv) == 2
        return capsys.readouterr().err

    assert "--push_to_hub needs --repo_id" in error(base + ["--push_to_hub"])
    assert "--dump_path is required" in error(base)
    assert "--model_type clip takes clip_image_enc.pt and clip_text_enc.pt as --checkpoint_path, got 1" in error(
        base[:3] + ["clip", "--vocab_dir", "v", "--dump_path", str(tmp_path)]
    )
    two = base[:1] + ["a.pt", "b.pt"] + base[2:] + ["--dump_path", str(tmp_path)]
    assert "--model_type base takes one checkpoint" in error(two)
    assert "invalid choice: 'unet'" in error(base[:3] + ["unet", "--vocab_dir", "v", "--dump_path", str(tmp_path)])


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_full_size_manifests_convert_completely(model_type):
    manifest = json.loads((REFERENCE_DIR / "manifests" / f"{model_type}.json").read_text())
    # Our defaults are the released models' options (the manifests were built with use_fp16=False).
    assert {**default_options(get_variant(model_type)), "use_fp16": False} == manifest["options"]
    unet, text_encoder, _ = convert_state_dict(_meta_state_dict(manifest), model_type)
    total = sum(p.numel() for p in unet.parameters()) + sum(p.numel() for p in text_encoder.parameters())
    assert total == manifest["total_params"]
    assert unet.config.block_out_channels[0] == 192 and text_encoder.config.hidden_size == 512


def _fixture_state_dict(model_type="base"):
    return load_openai_checkpoint(REFERENCE_DIR / f"{model_type}.pt")


def test_unknown_source_keys_are_listed():
    state_dict = _fixture_state_dict()
    state_dict["input_blocks.99.0.weight"] = torch.zeros(1)
    state_dict["label_emb.weight"] = torch.zeros(1)
    with pytest.raises(
        CheckpointMismatchError, match=r"2 checkpoint key\(s\).*input_blocks\.99\.0\.weight, label_emb"
    ):
        convert_state_dict(state_dict, "base", reference_options("base"))


def test_missing_parameters_are_listed():
    state_dict = _fixture_state_dict()
    del state_dict["middle_block.1.qkv.weight"]
    del state_dict["transformer.resblocks.1.ln_2.bias"]
    with pytest.raises(
        CheckpointMismatchError, match=r"unet parameter\(s\) not found.*mid_block\.attention\.to_qkv\.weight"
    ):
        convert_state_dict(state_dict, "base", reference_options("base"))
    state_dict = _fixture_state_dict()
    del state_dict["transformer.resblocks.1.ln_2.bias"]
    with pytest.raises(
        CheckpointMismatchError, match=r"text_encoder parameter\(s\) not found.*layers\.1\.norm2\.bias"
    ):
        convert_state_dict(state_dict, "base", reference_options("base"))


def test_shape_mismatches_and_wrong_model_type_are_reported():
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        convert_state_dict(_fixture_state_dict(), "base", {**reference_options("base"), "xf_width": 32})
    # base.pt read as the full-size default architecture.
    with pytest.raises(CheckpointMismatchError, match="does not match|do not belong"):
        convert_state_dict(_fixture_state_dict(), "base")
    # An upsampler checkpoint declared as base (its first conv takes 6 channels).
    options = {**reference_options("upsample"), "super_res": False}
    with pytest.raises(
        CheckpointMismatchError, match=r"conv_in\.weight \(checkpoint \(32, 6, 3, 3\), model \(32, 3, 3, 3\)\)"
    ):
        convert_state_dict(_fixture_state_dict("upsample"), "base", options)


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match=r"Unknown GLIDE option\(s\) \['num_chanels'\]"):
        convert_state_dict(_fixture_state_dict(), "base", {"num_chanels": 32})
    with pytest.raises(ValueError, match="inpaint=True contradicts model_type 'base'"):
        convert_state_dict(_fixture_state_dict(), "base", {"inpaint": True})
    with pytest.raises(ValueError, match="model_type must be one of"):
        convert_state_dict(_fixture_state_dict(), "clip")


def test_corrupt_and_unsafe_files_are_rejected(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(ValueError, match="Could not read .*garbage.pt"):
        load_openai_checkpoint(garbage)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes((REFERENCE_DIR / "base.pt").read_bytes()[:100_000])
    with pytest.raises(ValueError, match="Could not read"):
        load_openai_checkpoint(truncated)
    not_a_state_dict = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], not_a_state_dict)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_openai_checkpoint(not_a_state_dict)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"weight": torch.zeros(1), "extra": Exception("pickled object")}, unsafe)
    with pytest.raises(ValueError, match="weights_only=True"):
        load_openai_checkpoint(unsafe)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_openai_checkpoint(tmp_path / "missing.pt")


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    converted = convert_glide_checkpoint(REFERENCE_DIR / "base.pt", "base", TOKENIZERS_DIR, reference_options("base"))

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(converted.tokenizer, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_pipeline_folder(converted, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite_and_only_replaces_an_earlier_output(tmp_path):
    converted = convert_glide_checkpoint(REFERENCE_DIR / "base.pt", "base", TOKENIZERS_DIR, reference_options("base"))
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="already exists and is not empty; pass overwrite=True"):
        write_pipeline_folder(converted, target)
    with pytest.raises(FileExistsError, match=r"Refusing to replace .*out: it is not empty and not a GLIDE pipeline"):
        write_pipeline_folder(converted, target, overwrite=True)
    assert (target / "old.txt").read_text() == "keep me"
    (target / "old.txt").unlink()
    write_pipeline_folder(converted, target)  # an empty folder is always written
    (target / "notes.txt").write_text("mine")  # an earlier output, with a file of the user's in it
    write_pipeline_folder(converted, target, overwrite=True)
    assert not (target / "notes.txt").exists() and (target / "model_index.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(ValueError, match="dtype must be one of"):
        write_pipeline_folder(converted, tmp_path / "other", dtype="int8")


def test_push_to_hub_uploads_the_folder(monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            calls["create_repo"] = (repo_id, kwargs)

        def upload_folder(self, repo_id, folder_path, **kwargs):
            from pathlib import Path

            folder = Path(folder_path)
            calls["upload"] = (repo_id, sorted(p.name for p in folder.iterdir()), (folder / "README.md").read_text())

    import diffusers_glide.conversion.convert as convert_module

    monkeypatch.setattr(convert_module, "HfApi", FakeApi)
    code = _script().main(
        [
            "--checkpoint_path",
            str(REFERENCE_DIR / "base-inpaint.pt"),
            "--model_type",
            "base-inpaint",
            "--options_json",
            str(REFERENCE_DIR / "base-inpaint.options.json"),
            "--vocab_dir",
            str(TOKENIZERS_DIR),
            "--push_to_hub",
            "--repo_id",
            "someone/glide-base-inpaint",
            "--private",
        ]
    )
    assert code == 0
    assert calls["create_repo"] == (
        "someone/glide-base-inpaint",
        {"repo_type": "model", "private": True, "exist_ok": True},
    )
    repo_id, files, card = calls["upload"]
    assert repo_id == "someone/glide-base-inpaint"
    assert files == ["README.md", "model_index.json", "scheduler", "text_encoder", "tokenizer", "unet"]
    assert 'GlideInpaintPipeline.from_pretrained("someone/glide-base-inpaint")' in card
