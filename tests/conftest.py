"""Shared test helpers: where the reference fixtures live and how to read them."""

import json
import os
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[1]


def _find_fixtures() -> Path:
    # CI clones the repo next to `shared/`; a scratch clone elsewhere points at it with the env var.
    candidates = [
        os.environ.get("GLIDE_FIXTURES_DIR"),
        REPO_ROOT.parent / "shared" / "fixtures",
        "/work/shared/fixtures",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "glide_reference" / "index.json").is_file():
            return Path(candidate)
    raise RuntimeError(
        "The GLIDE reference fixtures were not found. Set GLIDE_FIXTURES_DIR to the `shared/fixtures` folder "
        f"(looked in: {[str(c) for c in candidates if c]})."
    )


FIXTURES_DIR = _find_fixtures()
REFERENCE_DIR = FIXTURES_DIR / "glide_reference"
TOKENIZERS_DIR = FIXTURES_DIR / "tokenizers"
MODEL_TYPES = ("base", "upsample", "base-inpaint", "upsample-inpaint")


def load_reference(name: str):
    """Tensors and `info` metadata of `glide_reference/<name>.safetensors`."""
    path = REFERENCE_DIR / f"{name}.safetensors"
    with safe_open(str(path), "pt") as f:
        info = json.loads(f.metadata()["info"])
    return load_file(str(path)), info


def reference_options(model_type: str) -> dict:
    return json.loads((REFERENCE_DIR / f"{model_type}.options.json").read_text())


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def tokenizers_dir() -> Path:
    return TOKENIZERS_DIR


@pytest.fixture(scope="session")
def converted_folders(tmp_path_factory) -> dict[str, Path]:
    """Every fixture checkpoint converted once by our converter into a pipeline folder."""
    from diffusers_glide.conversion import convert_glide_checkpoint, write_pipeline_folder

    root = tmp_path_factory.mktemp("converted")
    folders = {}
    for model_type in MODEL_TYPES:
        converted = convert_glide_checkpoint(
            REFERENCE_DIR / f"{model_type}.pt", model_type, TOKENIZERS_DIR, reference_options(model_type)
        )
        folders[model_type] = write_pipeline_folder(converted, root / model_type)
    return folders


def clip_options() -> dict:
    """The tiny noised CLIP's config.yaml values."""
    return json.loads((REFERENCE_DIR / "clip.config.json").read_text())


@pytest.fixture(scope="session")
def converted_clip_folder(tmp_path_factory) -> Path:
    """The fixture's noised CLIP (both towers and the CLIP tokenizer) converted once by our converter."""
    from diffusers_glide.conversion import convert_clip_checkpoints, write_pipeline_folder

    paths = [REFERENCE_DIR / "clip_image_enc.pt", REFERENCE_DIR / "clip_text_enc.pt"]
    converted = convert_clip_checkpoints(paths, TOKENIZERS_DIR, clip_options())
    return write_pipeline_folder(converted, tmp_path_factory.mktemp("converted") / "clip")


def max_abs_diff(actual, expected) -> float:
    return (actual.double() - expected.double()).abs().max().item()


def public_config(config) -> dict:
    """A model/scheduler config without diffusers' bookkeeping keys (`_name_or_path`, ...)."""
    return {key: value for key, value in dict(config).items() if not key.startswith("_")}


def recorded_noise_scheduler(scheduler, step_noise, batch: int):
    """A copy of a GlideScheduler whose ancestral steps use the reference's recorded noise draws, in order."""
    from diffusers_glide import GlideScheduler

    class RecordedNoiseScheduler(GlideScheduler):
        def step(self, *args, **kwargs):
            kwargs["variance_noise"] = self._recorded.pop(0)
            kwargs.pop("generator", None)
            return super().step(*args, **kwargs)

    replay = RecordedNoiseScheduler.from_config(scheduler.config)
    replay._recorded = [noise[:batch] for noise in step_noise]
    return replay
