"""Shared test helpers: where the reference fixtures live and how to read them."""

import functools
import json
import os
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

REPO_ROOT = Path(__file__).resolve().parents[1]

# `pytest` runs the tests in pytest-xdist workers (setup.cfg's addopts), one per core. Every worker, and every process
# its tests start, computes on one thread: the workers already fill the cores, and OpenMP threads competing for them
# make small operators many times slower. One thread everywhere also lets a test compare a subprocess's pixels with
# its own (differently threaded kernels sum in a different order).
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture
def one_thread():
    """This process computes on one thread for the length of the test, as subprocesses started with
    OMP_NUM_THREADS=1 do: another thread count splits the kernels' sums differently, which moves pixels."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


MAX_WORKERS = 8  # each worker holds its own models (1.1 GB at the peak measured with 2 workers)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core this process may use, at most MAX_WORKERS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


# The reference fixtures live in the repository (tests/fixtures/README.md): a clone anywhere runs every test.
FIXTURES_DIR = REPO_ROOT / "tests" / "fixtures"


def fixtures_path(*parts: str) -> Path:
    """A path inside the fixtures folder."""
    return FIXTURES_DIR.joinpath(*parts)


REFERENCE_DIR = fixtures_path("glide_reference")
TOKENIZERS_DIR = fixtures_path("tokenizers")


MODEL_TYPES = ("base", "upsample", "base-inpaint", "upsample-inpaint")


@functools.cache
def glide_tokenizer():
    """GLIDE's GPT-2 BPE tokenizer from the fixtures, built once (~0.3 s each): the tests only read tokenizers."""
    from diffusers_glide import build_glide_tokenizer

    return build_glide_tokenizer(fixtures_path("tokenizers"))


@functools.cache
def clip_tokenizer():
    """GLIDE's CLIP BPE tokenizer from the fixtures, built once (~0.2 s each): the tests only read tokenizers."""
    from diffusers_glide import build_clip_tokenizer

    return build_clip_tokenizer(fixtures_path("tokenizers"))


def load_reference(name: str):
    """Tensors and `info` metadata of `glide_reference/<name>.safetensors`."""
    path = fixtures_path("glide_reference") / f"{name}.safetensors"
    with safe_open(str(path), "pt") as f:
        info = json.loads(f.metadata()["info"])
    return load_file(str(path)), info


def reference_options(model_type: str) -> dict:
    return json.loads((fixtures_path("glide_reference") / f"{model_type}.options.json").read_text())


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return fixtures_path("glide_reference")


@pytest.fixture(scope="session")
def tokenizers_dir() -> Path:
    return fixtures_path("tokenizers")


@pytest.fixture(scope="session")
def converted_folders(tmp_path_factory) -> dict[str, Path]:
    """Every fixture checkpoint converted once by our converter into a pipeline folder."""
    from diffusers_glide.conversion import convert_glide_checkpoint, write_pipeline_folder

    root = tmp_path_factory.mktemp("converted")
    folders = {}
    for model_type in MODEL_TYPES:
        converted = convert_glide_checkpoint(
            fixtures_path("glide_reference") / f"{model_type}.pt",
            model_type,
            fixtures_path("tokenizers"),
            reference_options(model_type),
        )
        folders[model_type] = write_pipeline_folder(converted, root / model_type)
    return folders


def clip_options() -> dict:
    """The tiny noised CLIP's config.yaml values."""
    return json.loads((fixtures_path("glide_reference") / "clip.config.json").read_text())


@pytest.fixture(scope="session")
def converted_clip_folder(tmp_path_factory) -> Path:
    """The fixture's noised CLIP (both towers and the CLIP tokenizer) converted once by our converter."""
    from diffusers_glide.conversion import convert_clip_checkpoints, write_pipeline_folder

    paths = [
        fixtures_path("glide_reference") / "clip_image_enc.pt",
        fixtures_path("glide_reference") / "clip_text_enc.pt",
    ]
    converted = convert_clip_checkpoints(paths, fixtures_path("tokenizers"), clip_options())
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


# ---------------------------------------------------------------------------------------------------------------
# Tiny random components (no fixtures needed)

TINY_UNET_CONFIG = {
    "block_out_channels": (32, 64),
    "layers_per_block": 1,
    "attention_levels": (False, True),
    "attention_head_dim": 16,
    "encoder_hid_dim": 16,
    "dropout": 0.0,
}
TINY_WORDS = ["a", "red", "blue", "green", "circle", "square", "triangle", "on", "background"]


def tiny_unet(sample_size: int = 8, seed: int = 0, **overrides):
    """A tiny random GlideUNet2DModel (two levels, attention at the second), base unless `overrides` say otherwise."""
    from diffusers_glide import GlideUNet2DModel

    torch.manual_seed(seed)
    return GlideUNet2DModel(**{"sample_size": sample_size, **TINY_UNET_CONFIG, **overrides}).eval()


def tiny_text_encoder(seed: int = 0, **overrides):
    """A tiny random GlideTextEncoder (width 16, context 8, GPT-2's vocabulary unless `overrides` say otherwise)."""
    from diffusers_glide import GlideTextEncoder

    torch.manual_seed(seed)
    config = {"context_length": 8, "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2}
    return GlideTextEncoder(**{**config, **overrides}).eval()


def tiny_components(variant: str = "base", sample_size: int | None = None, **scheduler_config) -> dict:
    """unet / text_encoder / tokenizer / scheduler of a tiny pipeline of `variant` (a word-level tokenizer)."""
    from diffusers_glide import GlideScheduler
    from diffusers_glide.tokenization import build_word_level_tokenizer
    from diffusers_glide.variants import get_variant

    flags = get_variant(variant)
    size = sample_size or (16 if flags.super_resolution else 8)
    tokenizer = build_word_level_tokenizer(TINY_WORDS, context_length=8)
    return {
        "unet": tiny_unet(size, super_resolution=flags.super_resolution, inpainting=flags.inpainting),
        "text_encoder": tiny_text_encoder(vocab_size=len(tokenizer)),
        "tokenizer": tokenizer,
        "scheduler": GlideScheduler(**{"timestep_respacing": "4", **scheduler_config}),
    }


def tiny_pipeline(variant: str = "base", **scheduler_config):
    """The pipeline of `variant` over `tiny_components`, without progress bars. `"img2img"` is GlideImg2ImgPipeline
    over the base components with 5 steps, of which its default strength 0.8 runs 4, as many as the others run."""
    import diffusers_glide
    from diffusers_glide.variants import get_variant

    if variant == "img2img":
        components = tiny_components("base", **{"timestep_respacing": "5", **scheduler_config})
        pipe = diffusers_glide.GlideImg2ImgPipeline(**components)
        pipe.set_progress_bar_config(disable=True)
        return pipe
    pipe = getattr(diffusers_glide, get_variant(variant).pipeline_class)(
        **tiny_components(variant, **scheduler_config)
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_inputs(variant: str = "base", seed: int = 0, **overrides) -> dict:
    """Call arguments for `tiny_pipeline(variant)`: a prompt, seeded noise, the images the variant needs; "pt" out."""
    call = {"prompt": "a red circle", "generator": torch.Generator().manual_seed(seed), "output_type": "pt"}
    image = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    if variant in ("upsample", "img2img"):
        call["image"] = image
    if variant == "base-inpaint":
        mask = torch.zeros(1, 1, 8, 8)
        mask[..., 2:6, 2:6] = 1
        call.update(image=image, mask_image=mask)
    return {**call, **overrides}
