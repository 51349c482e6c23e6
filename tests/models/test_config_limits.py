"""Upper bounds of the model and scheduler configs, and the parameter count estimated from a config before a model is
built (`config_limits.py`, `models/parameter_count.py`).

Anything that would be large if a check were missing is built on the `meta` device, so a failing test cannot
allocate the memory the check is there to protect. The huge values of a tampered folder (10**9 timesteps, a million
layers) run under a memory limit in `tests/test_tampered_configs.py`.
"""

import json
import re

import pytest
import torch
from conftest import fixtures_path

from diffusers_glide import (
    GlideCLIPImageEncoder,
    GlideCLIPTextEncoder,
    GlideScheduler,
    GlideTextEncoder,
    GlideUNet2DModel,
)
from diffusers_glide.config_limits import MAX_PARAMETERS
from diffusers_glide.conversion.clip import clip_configs_from_options, resolve_clip_options
from diffusers_glide.conversion.options import configs_from_options, resolve_options
from diffusers_glide.models.parameter_count import (
    clip_image_encoder_parameter_count,
    clip_text_encoder_parameter_count,
    text_encoder_parameter_count,
    unet_parameter_count,
)
from diffusers_glide.samplers import build_scheduler
from diffusers_glide.schedulers.scheduling_glide import check_scheduler_config
from diffusers_glide.variants import get_variant

_LAYERS = {"num_hidden_layers": 1, "num_attention_heads": 2}
_CLIP_IMAGE = {"projection_dim": 8, "num_train_timesteps": 10}
TINY = {
    GlideUNet2DModel: {
        "sample_size": 16,
        "block_out_channels": [16, 32],
        "layers_per_block": 1,
        "attention_levels": [False, True],
        "attention_head_dim": 16,
        "encoder_hid_dim": 8,
        "norm_num_groups": 8,
    },
    GlideTextEncoder: {"vocab_size": 10, "context_length": 4, "hidden_size": 8, **_LAYERS},
    GlideCLIPImageEncoder: {"image_size": 8, "patch_size": 4, "hidden_size": 8, **_LAYERS, **_CLIP_IMAGE},
    GlideCLIPTextEncoder: {"vocab_size": 10, "context_length": 4, "hidden_size": 8, "projection_dim": 8, **_LAYERS},
}

COUNTS = {
    GlideUNet2DModel: unet_parameter_count,
    GlideTextEncoder: text_encoder_parameter_count,
    GlideCLIPImageEncoder: clip_image_encoder_parameter_count,
    GlideCLIPTextEncoder: clip_text_encoder_parameter_count,
}


def _built_on_meta(cls, **overrides):
    with torch.device("meta"):
        return cls(**{**TINY[cls], **overrides})


def _parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# One value just above each bound (the rest of the config tiny): refused with the key and the allowed range.
ABOVE_THE_BOUNDS = [
    (GlideUNet2DModel, "sample_size", 4098, "an integer in [1, 4096]"),
    (GlideUNet2DModel, "in_channels", 65, "an integer in [1, 64]"),
    (GlideUNet2DModel, "out_channels", 65, "an integer in [1, 64]"),
    (GlideUNet2DModel, "layers_per_block", 65, "an integer in [1, 64]"),
    (GlideUNet2DModel, "block_out_channels", [16, 8200], "a list of 1 to 8 integers in [1, 8192]"),
    (GlideUNet2DModel, "block_out_channels", [16] * 9, "a list of 1 to 8 integers in [1, 8192]"),
    (GlideUNet2DModel, "attention_head_dim", 1025, "an integer in [1, 1024] or None"),
    (GlideUNet2DModel, "encoder_hid_dim", 8193, "an integer in [1, 8192] or None"),
    (GlideTextEncoder, "vocab_size", 1_048_577, "an integer in [1, 1048576]"),
    (GlideTextEncoder, "context_length", 4097, "an integer in [1, 4096]"),
    (GlideTextEncoder, "hidden_size", 8194, "an integer in [1, 8192]"),
    (GlideTextEncoder, "num_hidden_layers", 65, "an integer in [1, 64]"),
    (GlideTextEncoder, "num_attention_heads", 257, "an integer in [1, 256]"),
    (GlideCLIPImageEncoder, "image_size", 4100, "an integer in [1, 4096]"),
    (GlideCLIPImageEncoder, "patch_size", 257, "an integer in [1, 256]"),
    (GlideCLIPImageEncoder, "num_train_timesteps", 100_001, "an integer in [1, 100000]"),
    (GlideCLIPImageEncoder, "projection_dim", 8193, "an integer in [1, 8192]"),
    (GlideCLIPImageEncoder, "num_hidden_layers", 65, "an integer in [1, 64]"),
    (GlideCLIPTextEncoder, "vocab_size", 1_048_577, "an integer in [1, 1048576]"),
    (GlideCLIPTextEncoder, "context_length", 4097, "an integer in [1, 4096]"),
    (GlideCLIPTextEncoder, "num_attention_heads", 257, "an integer in [1, 256]"),
    (GlideCLIPTextEncoder, "projection_dim", 8193, "an integer in [1, 8192]"),
]


@pytest.mark.parametrize(("cls", "key", "value", "expected"), ABOVE_THE_BOUNDS)
def test_values_above_the_bounds_name_the_key_and_the_range(cls, key, value, expected):
    message = f"{cls.__name__} config: `{key}` must be {expected}, got {value!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        _built_on_meta(cls, **{key: value})


def test_unet_heads_above_the_bound_are_refused():
    message = "GlideUNet2DModel config: `num_attention_heads` must be an integer in [1, 256] or None, got 512."
    with pytest.raises(ValueError, match=re.escape(message)):
        _built_on_meta(
            GlideUNet2DModel, block_out_channels=[512, 512], attention_head_dim=None, num_attention_heads=512
        )


def test_clip_patch_grid_above_the_bound_is_refused():
    # 1024 / 4 = 256 patches a side, 65536 tokens for every attention layer: at most 128 a side.
    message = (
        "GlideCLIPImageEncoder config: `patch_size` must be at least 8 for image_size 1024 (at most 128 x 128 "
        "patches), got 4."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        _built_on_meta(GlideCLIPImageEncoder, image_size=1024, patch_size=4)
    assert _built_on_meta(GlideCLIPImageEncoder, image_size=1024, patch_size=8).position_embedding.shape == (
        1 + 128 * 128,
        8,
    )


def test_values_at_the_bounds_are_accepted():
    unet = _built_on_meta(GlideUNet2DModel, layers_per_block=64, sample_size=4096, in_channels=64, out_channels=64)
    assert len(unet.down_blocks[0].resnets) == 64 and len(unet.up_blocks[0].resnets) == 65
    assert unet.conv_in.in_channels == 64 and unet.conv_out.out_channels == 64
    levels = {"block_out_channels": [8] * 8, "attention_levels": [False] * 8, "attention_head_dim": 8}
    unet = _built_on_meta(GlideUNet2DModel, **levels, sample_size=128)
    assert len(unet.down_blocks) == 8
    text = _built_on_meta(GlideTextEncoder, num_hidden_layers=64, context_length=4096, vocab_size=1_048_576)
    assert len(text.layers) == 64 and text.token_embedding.weight.shape == (1_048_576, 8)
    image = _built_on_meta(GlideCLIPImageEncoder, num_train_timesteps=100_000, image_size=4096, patch_size=256)
    assert image.timestep_embedding.weight.shape == (100_000, 8) and image.position_embedding.shape == (257, 8)
    assert len(GlideScheduler(num_train_timesteps=100_000, timestep_respacing="10")) == 100_000


def test_a_config_within_every_range_but_too_many_parameters_is_refused():
    # Every value is allowed on its own; together, 8192 channels at every level make ~14 billion parameters.
    config = {**TINY[GlideUNet2DModel], "block_out_channels": [8192] * 4, "attention_levels": [True] * 4}
    config.update(sample_size=64, layers_per_block=3, attention_head_dim=64, norm_num_groups=32)
    estimate = unet_parameter_count(_full_unet_config(config))
    assert estimate > MAX_PARAMETERS
    message = (
        f"GlideUNet2DModel config: the model would have {estimate:,} parameters (estimated from the config), more "
        f"than the limit of {MAX_PARAMETERS:,} (ten times the largest GLIDE model); it is not built."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        _built_on_meta(GlideUNet2DModel, **config)


@pytest.mark.parametrize(
    ("cls", "overrides"),
    [
        # 1048576 x 8192 token table alone: 8.6 billion
        (GlideTextEncoder, {"vocab_size": 1_048_576, "hidden_size": 8192}),
        (GlideCLIPTextEncoder, {"vocab_size": 1_048_576, "hidden_size": 8192}),
        # 64 layers of width 8192: 12 * 8192**2 * 64 = 51 billion
        (GlideCLIPImageEncoder, {"hidden_size": 8192, "num_hidden_layers": 64}),
    ],
)
def test_transformers_above_the_parameter_limit_are_refused(cls, overrides):
    with pytest.raises(ValueError, match=re.escape(f"{cls.__name__} config: the model would have ")) as error:
        _built_on_meta(cls, **overrides)
    estimate = int(re.search(r"would have ([\d,]+) parameters", str(error.value))[1].replace(",", ""))
    assert estimate > MAX_PARAMETERS


def _full_unet_config(overrides: dict) -> dict:
    """`overrides` completed with the constructor's defaults, as `unet.config` would hold them."""
    with torch.device("meta"):
        defaults = dict(GlideUNet2DModel(**TINY[GlideUNet2DModel]).config)
    return {**defaults, **overrides}


# Architectures that exercise every branch of the UNet estimate (built for real: they are tiny).
UNET_VARIANTS = [
    {},
    {"super_resolution": True},
    {"inpainting": True, "super_resolution": True, "in_channels": 4},
    {"resblock_updown": False, "resnet_time_scale_shift": "default"},
    {"encoder_hid_dim": None},
    {"attention_head_dim": None, "num_attention_heads": 2, "attention_levels": [True, True]},
    {"block_out_channels": [16, 32, 32], "attention_levels": [True, False, True], "layers_per_block": 2},
    {"super_resolution": True, "low_res_residual": True, "out_channels": 3},
]


@pytest.mark.parametrize("overrides", UNET_VARIANTS)
def test_unet_estimate_matches_the_built_model(overrides):
    unet = GlideUNet2DModel(**{**TINY[GlideUNet2DModel], **overrides})
    assert unet_parameter_count(unet.config) == _parameters(unet) > 0


@pytest.mark.parametrize(
    ("cls", "overrides"),
    [
        (GlideTextEncoder, {}),
        (GlideTextEncoder, {"use_padding_embedding": False, "use_final_layer_norm": False, "num_hidden_layers": 3}),
        (GlideCLIPImageEncoder, {}),
        (GlideCLIPImageEncoder, {"image_size": 16, "patch_size": 2, "num_hidden_layers": 2}),
        (GlideCLIPTextEncoder, {}),
        (GlideCLIPTextEncoder, {"projection_dim": 5, "num_hidden_layers": 2}),
    ],
)
def test_transformer_estimates_match_the_built_models(cls, overrides):
    model = cls(**{**TINY[cls], **overrides})
    assert COUNTS[cls](model.config) == _parameters(model) > 0


def _manifest(name: str) -> dict:
    return json.loads((fixtures_path("glide_reference", "manifests") / f"{name}.json").read_text())


@pytest.mark.parametrize("model_type", ["base", "upsample", "base-inpaint", "upsample-inpaint"])
def test_full_size_glide_estimates_match_the_released_models(model_type):
    # The released UNet checkpoints hold the text transformer too: their parameter count is the sum of both.
    variant = get_variant(model_type)
    configs = configs_from_options(variant, resolve_options(variant))
    with torch.device("meta"):
        unet, text_encoder = GlideUNet2DModel(**configs.unet), GlideTextEncoder(**configs.text_encoder)
    assert unet_parameter_count(unet.config) == _parameters(unet)
    assert text_encoder_parameter_count(text_encoder.config) == _parameters(text_encoder)
    assert _parameters(unet) + _parameters(text_encoder) == _manifest(model_type)["total_params"]
    # the largest GLIDE model is ten times below the limit
    assert 10 * _parameters(unet) < MAX_PARAMETERS


def test_full_size_noised_clip_estimates_match_the_released_models():
    image_config, text_config = clip_configs_from_options(resolve_clip_options())
    with torch.device("meta"):
        image, text = GlideCLIPImageEncoder(**image_config), GlideCLIPTextEncoder(**text_config)
    assert clip_image_encoder_parameter_count(image.config) == _parameters(image)
    assert _parameters(image) == _manifest("clip_image_enc")["total_params"] == 86_443_776
    assert clip_text_encoder_parameter_count(text.config) == _parameters(text)
    assert _parameters(text) == _manifest("clip_text_enc")["total_params"] == 71_679_488


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # values just past the bounds (the huge ones run under a memory limit in tests/test_tampered_configs.py)
        ({"num_train_timesteps": 100_001}, "`num_train_timesteps` must be an integer in [2, 100000], got 100001."),
        ({"num_train_timesteps": 1000.0}, "`num_train_timesteps` must be an integer in [2, 100000], got 1000.0."),
        ({"num_train_timesteps": True}, "`num_train_timesteps` must be an integer in [2, 100000], got True."),
        ({"solver_order": 17}, "`solver_order` must be an integer in [1, 16], got 17."),
    ],
)
def test_scheduler_configs_are_checked_before_any_scheduler_is_built(config, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_scheduler_config(config)
    # DPM-Solver++ from such a config would allocate its tables (or lists) first
    with pytest.raises(ValueError, match=re.escape(message)):
        build_scheduler({**GlideScheduler().config, **config}, "dpm++")
    if "num_train_timesteps" in config:
        with pytest.raises(ValueError, match=re.escape(message)):
            GlideScheduler(**config)


def test_scheduler_configs_at_the_bounds_are_accepted():
    check_scheduler_config({"num_train_timesteps": 100_000, "solver_order": 16})
    check_scheduler_config({})  # diffusers' defaults (1000 steps)
    scheduler = build_scheduler({**GlideScheduler().config, "num_train_timesteps": 2000, "solver_order": 3}, "dpm++")
    assert scheduler.config.num_train_timesteps == 2000 and scheduler.config.solver_order == 3
