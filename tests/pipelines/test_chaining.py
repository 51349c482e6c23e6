"""Chaining GLIDE's stages like OpenAI's inpainting notebook: base-inpaint 64 -> upsample-inpaint 256 (tiny sizes)."""

import numpy as np
import torch
from conftest import glide_tokenizer, tiny_text_encoder, tiny_unet

from diffusers_glide import (
    GlideInpaintPipeline,
    GlideScheduler,
    GlideUpsamplePipeline,
)


def _components(sample_size, super_resolution, schedule, respacing):
    return {
        "unet": tiny_unet(sample_size, inpainting=True, super_resolution=super_resolution),
        "text_encoder": tiny_text_encoder(),
        "tokenizer": glide_tokenizer(),
        "scheduler": GlideScheduler(beta_schedule=schedule, timestep_respacing=respacing),
    }


def test_inpaint_then_upsample_inpaint_keeps_the_known_region():
    inpaint = GlideInpaintPipeline(**_components(8, False, "squaredcos_cap_v2", "4"))
    upsample = GlideUpsamplePipeline(**_components(16, True, "linear", "fast27"))
    for pipe in (inpaint, upsample):
        pipe.set_progress_bar_config(disable=True)

    rng = np.random.default_rng(0)
    source = rng.random((16, 16, 3), dtype=np.float32)  # the high-resolution photo
    mask = np.zeros((16, 16), np.float32)
    mask[4:12, 4:12] = 1  # repaint the centre (diffusers convention)
    prompt = "a red ball"

    # Stage 1 at the base size (image and mask resized down), stage 2 at full size with the same mask.
    low = inpaint(prompt, image=source, mask_image=mask, generator=torch.Generator().manual_seed(0), output_type="pt")
    high = upsample(
        prompt,
        image=low.images,
        inpaint_image=source,
        mask_image=mask,
        generator=torch.Generator().manual_seed(0),
        num_inference_steps=5,
        output_type="np",
    ).images
    assert low.images.shape == (1, 3, 8, 8) and high.shape == (1, 16, 16, 3)
    keep = mask == 0
    np.testing.assert_allclose(high[0][keep], source[keep], atol=1e-5)
    assert np.abs(high[0][~keep] - source[~keep]).max() > 0.05  # the hole was regenerated
