"""Slow tests on OpenAI's real weights, converted beforehand (they cannot be downloaded in CI).

Set GLIDE_CONVERTED_DIR to a folder holding the converted checkpoints as sub-folders `base`, `upsample`,
`base-inpaint`, `upsample-inpaint` (any subset), e.g.:

    for t in base upsample base-inpaint upsample-inpaint; do
      python convert_scripts/convert_glide_to_diffusers.py --checkpoint_path openai/${t/-/_}.pt \
        --model_type $t --vocab_dir openai --dump_path converted/$t
    done
    GLIDE_CONVERTED_DIR=converted pytest tests/pipelines/test_slow_real_checkpoints.py

Without it every test here is skipped (and reported as skipped).
"""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusers_glide import GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline

CONVERTED_DIR = os.environ.get("GLIDE_CONVERTED_DIR")
pytestmark = pytest.mark.skipif(
    not CONVERTED_DIR, reason="GLIDE_CONVERTED_DIR is not set: no converted real GLIDE checkpoints to test"
)


def _folder(model_type: str) -> Path:
    folder = Path(CONVERTED_DIR or "") / model_type
    if not (folder / "model_index.json").is_file():
        pytest.skip(f"no converted {model_type} checkpoint in {folder}")
    return folder


def _seed(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def base_images():
    pipe = GlidePipeline.from_pretrained(_folder("base"))
    assert pipe.unet.config.sample_size == 64 and pipe.text_encoder.config.context_length == 128
    return pipe(
        ["a red apple on a white table", "an oil painting of a corgi"],
        respacing="50",
        generator=_seed(),
        output_type="pt",
    ).images


def test_base_generates_structured_images(base_images):
    assert base_images.shape == (2, 3, 64, 64)
    # A real sample has structure: neither flat nor noise (neighbouring pixels correlate).
    assert base_images.std() > 0.05
    horizontal = torch.corrcoef(torch.stack([base_images[..., :-1].flatten(), base_images[..., 1:].flatten()]))[0, 1]
    assert horizontal > 0.8, f"neighbouring-pixel correlation {horizontal:.3f}"


def test_upsampler_keeps_the_low_resolution_content(base_images):
    pipe = GlideUpsamplePipeline.from_pretrained(_folder("upsample"))
    high = pipe(
        ["a red apple on a white table", "an oil painting of a corgi"],
        image=base_images,
        generator=_seed(),
        output_type="pt",
    ).images
    assert high.shape == (2, 3, 256, 256)
    downsampled = torch.nn.functional.avg_pool2d(high, 4)
    assert (downsampled - base_images).abs().mean() < 0.08


def test_inpainting_keeps_the_known_region():
    pipe = GlideInpaintPipeline.from_pretrained(_folder("base-inpaint"))
    rng = np.random.default_rng(0)
    image = np.repeat(np.linspace(0, 1, 64, dtype=np.float32)[None, :, None], 64, axis=0) * np.ones(3, np.float32)
    image = np.clip(image + rng.normal(0, 0.02, image.shape).astype(np.float32), 0, 1)
    mask = np.zeros((64, 64), np.float32)
    mask[16:48, 16:48] = 1  # repaint the centre
    out = pipe("a red ball", image=image, mask_image=mask, respacing="50", generator=_seed(), output_type="np").images
    keep = mask == 0
    assert np.abs(out[0][keep] - image[keep]).max() <= 1 / 255 + 1e-6
