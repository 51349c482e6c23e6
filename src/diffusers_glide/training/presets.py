"""Architectures to train from scratch, and turning a pretrained UNet into another GLIDE variant."""

from __future__ import annotations

import torch

from ..models import GlideTextEncoder, GlideUNet2DModel
from ..schedulers import GlideScheduler
from ..variants import get_variant

# The embedded text-to-image model: ~2.3M parameters, 32x32 images, a 16-word text context.
PRESETS: dict[str, dict] = {
    "shapes-tiny": {
        "unet": {
            "sample_size": 32,
            "block_out_channels": (32, 64, 96),
            "layers_per_block": 1,
            "attention_levels": (False, False, True),
            "attention_head_dim": 32,
            "encoder_hid_dim": 64,
            "dropout": 0.0,
            "norm_num_groups": 16,
        },
        "text_encoder": {
            "context_length": 16,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        "scheduler": {"beta_schedule": "squaredcos_cap_v2", "timestep_respacing": "50"},
    },
    # The embedded 4x upsampler (32 -> 128, ~2.1M parameters): one residual block per level, attention only at
    # the 16x16 level, and GLIDE's upsampler noise schedule (linear betas) and "fast27" respacing. It predicts x0
    # rather than epsilon: a flat region then only needs the low-resolution colour passed through, where an
    # epsilon model must predict the noise precisely at every step (far too slow to learn on a CPU budget).
    "shapes-upsample-tiny": {
        "unet": {
            "sample_size": 128,
            "block_out_channels": (16, 32, 64, 96),
            "layers_per_block": 1,
            "attention_levels": (False, False, False, True),
            "attention_head_dim": 32,
            "dropout": 0.0,
            "norm_num_groups": 8,
            "low_res_residual": True,
        },
        "text_encoder": {
            "context_length": 16,
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        },
        "scheduler": {
            "beta_schedule": "linear",
            "timestep_respacing": "fast27",
            "sampler": "ddim",
            "prediction_type": "sample",
        },
    },
    # OpenAI's released base architecture (64x64, text context 128, GPT-2 vocabulary), for real training runs.
    "glide-base": {
        "unet": {"sample_size": 64},
        "text_encoder": {"context_length": 128, "vocab_size": 50257},
        "scheduler": {"beta_schedule": "squaredcos_cap_v2", "timestep_respacing": "100"},
    },
}


def build_models_from_preset(
    preset: str | dict,
    vocab_size: int,
    model_type: str,
    unet_overrides: dict | None = None,
    text_encoder_overrides: dict | None = None,
) -> tuple[GlideUNet2DModel, GlideTextEncoder, GlideScheduler]:
    """Randomly initialised UNet / text encoder / scheduler of a preset (a name of [`PRESETS`] or a dict)."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise ValueError(f"Unknown preset {preset!r}; available: {sorted(PRESETS)}.")
        preset = PRESETS[preset]
    text_config = {**preset.get("text_encoder", {}), **(text_encoder_overrides or {})}
    text_config.setdefault("vocab_size", vocab_size)
    if text_config["vocab_size"] < vocab_size:
        raise ValueError(
            f"The text encoder's vocab_size ({text_config['vocab_size']}) is smaller than the tokenizer's ({vocab_size})."
        )
    text_encoder = GlideTextEncoder(**text_config)
    unet_config = {**preset.get("unet", {}), **(unet_overrides or {})}
    unet_config["encoder_hid_dim"] = text_encoder.config.hidden_size
    variant = get_variant(model_type)
    unet_config.update(super_resolution=variant.super_resolution, inpainting=variant.inpainting)
    unet = GlideUNet2DModel(**unet_config)
    scheduler = GlideScheduler(**preset.get("scheduler", {}))
    return unet, text_encoder, scheduler


def _input_channel_slices(channels: int, inpainting: bool, super_resolution: bool) -> dict[str, slice]:
    """Where each input sits in `conv_in`'s channels (see `GlideUNet2DModel._model_input`)."""
    slices = {"sample": slice(0, channels)}
    offset = channels
    if inpainting:
        slices["inpaint"] = slice(offset, offset + channels + 1)  # masked image and mask
        offset += channels + 1
    if super_resolution:
        slices["low_res"] = slice(offset, offset + channels)
    return slices


def adapt_unet_to_variant(unet: GlideUNet2DModel, model_type: str) -> GlideUNet2DModel:
    """
    Return `unet` as the `model_type` variant, keeping every pretrained weight.

    The variants differ only in the input channels of `conv_in` (see `GlideUNet2DModel`), so a base model can
    start an inpainting or upsampling fine-tune as GLIDE's own were started: the new input channels get zero
    weights, so the adapted model initially computes exactly what the pretrained one did. Removing inputs is
    refused (it would discard what the model was trained to use).
    """
    variant = get_variant(model_type)
    super_resolution, inpainting = variant.super_resolution, variant.inpainting
    config = unet.config
    if (config.super_resolution, config.inpainting) == (super_resolution, inpainting):
        return unet
    if (config.super_resolution and not super_resolution) or (config.inpainting and not inpainting):
        raise ValueError(
            f"Cannot turn a pretrained UNet with super_resolution={config.super_resolution}, "
            f"inpainting={config.inpainting} into a {model_type!r} model: it would drop conditioning inputs."
        )
    new_config = {k: v for k, v in config.items() if not k.startswith("_")}
    new_config.update(super_resolution=super_resolution, inpainting=inpainting)
    adapted = GlideUNet2DModel(**new_config).to(unet.dtype)
    state = unet.state_dict()
    old_slices = _input_channel_slices(config.in_channels, config.inpainting, config.super_resolution)
    new_slices = _input_channel_slices(config.in_channels, inpainting, super_resolution)
    weight = torch.zeros_like(adapted.conv_in.weight)
    for name, old in old_slices.items():
        weight[:, new_slices[name]] = state["conv_in.weight"][:, old]
    state["conv_in.weight"] = weight
    adapted.load_state_dict(state)
    return adapted
