"""OpenAI GLIDE options (the kwargs of `create_model_and_diffusion`) -> diffusers-glide configs."""

from dataclasses import dataclass

from ..schedulers.respacing import BETA_SCHEDULES, space_timesteps
from ..variants import MODEL_TYPES, GlideVariant
from .option_checks import (
    BOOL,
    POSITIVE_INT,
    POSITIVE_INT_LIST,
    POSITIVE_INT_OR_MINUS_ONE,
    PROBABILITY_BELOW_ONE,
    Rule,
    check_known,
    check_options,
    int_at_least,
    int_list,
    one_of,
    option_error,
)

__all__ = ["MODEL_TYPES", "configs_from_options", "default_options", "resolve_options"]

# The reference's `model_and_diffusion_defaults()`, i.e. the released base models.
_BASE_DEFAULTS = {
    "image_size": 64,
    "num_channels": 192,
    "num_res_blocks": 3,
    "channel_mult": "",
    "num_heads": 1,
    "num_head_channels": 64,
    "num_heads_upsample": -1,
    "attention_resolutions": "32,16,8",
    "dropout": 0.1,
    "text_ctx": 128,
    "xf_width": 512,
    "xf_layers": 16,
    "xf_heads": 8,
    "xf_final_ln": True,
    "xf_padding": True,
    "diffusion_steps": 1000,
    "noise_schedule": "squaredcos_cap_v2",
    "timestep_respacing": "",
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "use_fp16": True,
    "cache_text_emb": False,
    "inpaint": False,
    "super_res": False,
}
# `model_and_diffusion_defaults_upsampler()`: the released 64 -> 256 models.
_UPSAMPLE_DEFAULTS = {
    **_BASE_DEFAULTS,
    "image_size": 256,
    "num_res_blocks": 2,
    "noise_schedule": "linear",
    "super_res": True,
}
# The reference derives channel_mult from the image size when it is left empty.
_DEFAULT_CHANNEL_MULT = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}

_WHAT = "GLIDE"
_RULES = {
    "image_size": POSITIVE_INT,
    # GLIDE's GroupNorm has 32 groups, and the first level has num_channels channels
    "num_channels": Rule(lambda v: POSITIVE_INT.accepts(v) and v % 32 == 0, "a positive multiple of 32"),
    "num_res_blocks": POSITIVE_INT,
    "channel_mult": Rule(
        lambda v: v in ("", None) or int_list(v) is not None,
        f'"" (the default of the image size) or {POSITIVE_INT_LIST.expected}',
    ),
    "num_heads": POSITIVE_INT,
    "num_head_channels": POSITIVE_INT_OR_MINUS_ONE,
    "num_heads_upsample": POSITIVE_INT_OR_MINUS_ONE,
    "attention_resolutions": POSITIVE_INT_LIST,
    "dropout": PROBABILITY_BELOW_ONE,
    "text_ctx": POSITIVE_INT,
    "xf_width": int_at_least(1, "a positive integer (checkpoints without a text transformer are not supported)"),
    "xf_layers": POSITIVE_INT,
    "xf_heads": POSITIVE_INT,
    "xf_final_ln": BOOL,
    "xf_padding": BOOL,
    "diffusion_steps": int_at_least(2),
    "noise_schedule": one_of(BETA_SCHEDULES),
    "timestep_respacing": Rule(
        lambda v: isinstance(v, str), 'a respacing string such as "", "100", "ddim50" or "fast27"'
    ),
    "use_scale_shift_norm": BOOL,
    "resblock_updown": BOOL,
    "use_fp16": BOOL,
    "cache_text_emb": BOOL,
    "inpaint": BOOL,
    "super_res": BOOL,
}


@dataclass
class GlideConfigs:
    """The three component configs of one converted checkpoint."""

    unet: dict
    text_encoder: dict
    scheduler: dict


def default_options(variant: GlideVariant) -> dict:
    """The reference's default options of the released checkpoint of `variant`."""
    options = dict(_UPSAMPLE_DEFAULTS if variant.super_resolution else _BASE_DEFAULTS)
    options["inpaint"] = variant.inpainting
    return options


def resolve_options(variant: GlideVariant, overrides: dict | None = None) -> dict:
    """Defaults of `variant` updated with `overrides`; unknown keys, bad values and contradictions are errors."""
    options = default_options(variant)
    options.update(check_known(overrides, options, _WHAT))
    check_options(options, _RULES, _WHAT)
    for key, expected in (("inpaint", variant.inpainting), ("super_res", variant.super_resolution)):
        if options[key] != expected:
            raise ValueError(
                f"Option {key}={options[key]!r} contradicts model_type {variant.model_type!r} "
                f"(which implies {key}={expected})."
            )
    _check_consistency(options)
    return options


def _channel_mult(options: dict) -> tuple[int, ...]:
    if options["channel_mult"] in ("", None):
        image_size = options["image_size"]
        if image_size not in _DEFAULT_CHANNEL_MULT:
            raise option_error(
                _WHAT,
                "channel_mult",
                options["channel_mult"],
                f"an explicit list, since image_size {image_size} has no default one",
            )
        return _DEFAULT_CHANNEL_MULT[image_size]
    return int_list(options["channel_mult"])


def _attention_levels(options: dict, num_levels: int) -> list[bool]:
    # The reference lists attention resolutions in pixels; a level has attention when its downsampling
    # factor 2**level matches one of them.
    factors = {options["image_size"] // res for res in int_list(options["attention_resolutions"])}
    return [2**level in factors for level in range(num_levels)]


def _check_consistency(options: dict) -> None:
    """The checks that involve several (individually valid) options."""
    channel_mult = _channel_mult(options)
    if channel_mult[0] != 1:
        raise option_error(_WHAT, "channel_mult", options["channel_mult"], "a list starting with 1")
    levels = len(channel_mult)
    if options["image_size"] % 2 ** (levels - 1):
        raise option_error(
            _WHAT, "image_size", options["image_size"], f"a multiple of {2 ** (levels - 1)} ({levels} levels halve it)"
        )
    if options["xf_width"] % options["xf_heads"]:
        raise option_error(_WHAT, "xf_heads", options["xf_heads"], f"a divisor of xf_width ({options['xf_width']})")
    head_channels = options["num_head_channels"]
    if head_channels == -1:
        if options["num_heads_upsample"] not in (-1, options["num_heads"]):
            raise option_error(
                _WHAT, "num_heads_upsample", options["num_heads_upsample"], f"-1 or num_heads ({options['num_heads']})"
            )
    else:
        # the levels with attention, and the middle block (always attention, at the last level's width)
        with_attention = [*_attention_levels(options, levels)[:-1], True]
        widths = sorted({options["num_channels"] * m for m, a in zip(channel_mult, with_attention, strict=True) if a})
        if any(width % head_channels for width in widths):
            raise option_error(
                _WHAT, "num_head_channels", head_channels, f"a divisor of the widths with attention {widths}"
            )
    try:
        space_timesteps(options["diffusion_steps"], options["timestep_respacing"])
    except ValueError as error:
        raise option_error(
            _WHAT, "timestep_respacing", options["timestep_respacing"], f"a valid respacing ({error})"
        ) from None


def configs_from_options(variant: GlideVariant, options: dict, vocab_size: int = 50257) -> GlideConfigs:
    """Translate resolved (checked) OpenAI options into the UNet, text encoder and scheduler configs."""
    channel_mult = _channel_mult(options)
    if options["num_head_channels"] == -1:
        head_kwargs = {"attention_head_dim": None, "num_attention_heads": options["num_heads"]}
    else:
        head_kwargs = {"attention_head_dim": options["num_head_channels"], "num_attention_heads": None}

    unet = {
        "sample_size": options["image_size"],
        "in_channels": 3,
        "out_channels": 6,
        "block_out_channels": [options["num_channels"] * mult for mult in channel_mult],
        "layers_per_block": options["num_res_blocks"],
        "attention_levels": _attention_levels(options, len(channel_mult)),
        **head_kwargs,
        "encoder_hid_dim": options["xf_width"],
        "super_resolution": options["super_res"],
        "inpainting": options["inpaint"],
        "resnet_time_scale_shift": "scale_shift" if options["use_scale_shift_norm"] else "default",
        "resblock_updown": options["resblock_updown"],
        "dropout": float(options["dropout"]),
    }
    text_encoder = {
        "vocab_size": vocab_size,
        "context_length": options["text_ctx"],
        "hidden_size": options["xf_width"],
        "num_hidden_layers": options["xf_layers"],
        "num_attention_heads": options["xf_heads"],
        "use_final_layer_norm": options["xf_final_ln"],
        "use_padding_embedding": options["xf_padding"],
    }
    scheduler = {
        "num_train_timesteps": options["diffusion_steps"],
        "beta_schedule": options["noise_schedule"],
        "timestep_respacing": options["timestep_respacing"] or variant.notebook_respacing,
        "sampler": variant.notebook_sampler,
    }
    return GlideConfigs(unet=unet, text_encoder=text_encoder, scheduler=scheduler)
