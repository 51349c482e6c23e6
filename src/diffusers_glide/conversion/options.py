"""OpenAI GLIDE options (the kwargs of `create_model_and_diffusion`) -> diffusers-glide configs."""

from dataclasses import dataclass

MODEL_TYPES = ("base", "upsample", "base-inpaint", "upsample-inpaint")

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

# What OpenAI's notebooks sample each model with: (respacing, sampler).
NOTEBOOK_SAMPLING = {
    "base": ("100", "ddpm"),
    "upsample": ("fast27", "ddim"),
    "base-inpaint": ("100", "ddpm"),
    # inpaint.ipynb runs the upsample-inpaint stage with ancestral steps over "fast27".
    "upsample-inpaint": ("fast27", "ddpm"),
}

PIPELINE_CLASS = {
    "base": "GlidePipeline",
    "upsample": "GlideUpsamplePipeline",
    "base-inpaint": "GlideInpaintPipeline",
    "upsample-inpaint": "GlideUpsamplePipeline",
}


@dataclass
class GlideConfigs:
    """The three component configs of one converted checkpoint."""

    unet: dict
    text_encoder: dict
    scheduler: dict


def default_options(model_type: str) -> dict:
    """The reference's default options of the released checkpoint `model_type`."""
    _check_model_type(model_type)
    options = dict(_UPSAMPLE_DEFAULTS if model_type.startswith("upsample") else _BASE_DEFAULTS)
    options["inpaint"] = model_type.endswith("inpaint")
    return options


def resolve_options(model_type: str, overrides: dict | None = None) -> dict:
    """Defaults of `model_type` updated with `overrides`; unknown keys and contradictions are errors."""
    options = default_options(model_type)
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(options))
    if unknown:
        raise ValueError(f"Unknown GLIDE option(s) {unknown}; known options are {sorted(options)}.")
    options.update(overrides)
    for key, expected in (
        ("inpaint", model_type.endswith("inpaint")),
        ("super_res", model_type.startswith("upsample")),
    ):
        if bool(options[key]) != expected:
            raise ValueError(
                f"Option {key}={options[key]!r} contradicts model_type {model_type!r} (which implies {key}={expected})."
            )
    return options


def configs_from_options(model_type: str, options: dict, vocab_size: int = 50257) -> GlideConfigs:
    """Translate resolved OpenAI options into the UNet, text encoder and scheduler configs."""
    image_size = int(options["image_size"])
    if options["channel_mult"] in ("", None):
        if image_size not in _DEFAULT_CHANNEL_MULT:
            raise ValueError(f"No default channel_mult for image_size {image_size}; set `channel_mult` explicitly.")
        channel_mult = _DEFAULT_CHANNEL_MULT[image_size]
    else:
        channel_mult = _parse_ints(options["channel_mult"], "channel_mult")
    if channel_mult[0] != 1:
        raise ValueError(f"channel_mult must start with 1 (the timestep embedding width), got {channel_mult}.")
    if not options["xf_width"]:
        raise ValueError("Checkpoints without a text transformer (xf_width=0) are not supported.")

    model_channels = int(options["num_channels"])
    # The reference lists attention resolutions in pixels; a level has attention when its downsampling
    # factor 2**level matches one of them.
    attention_factors = {
        image_size // res for res in _parse_ints(options["attention_resolutions"], "attention_resolutions")
    }
    if options["num_head_channels"] == -1:
        heads = int(options["num_heads"])
        if options["num_heads_upsample"] not in (-1, heads):
            raise ValueError("num_heads_upsample different from num_heads is not supported.")
        head_kwargs = {"attention_head_dim": None, "num_attention_heads": heads}
    else:
        head_kwargs = {"attention_head_dim": int(options["num_head_channels"]), "num_attention_heads": None}

    unet = {
        "sample_size": image_size,
        "in_channels": 3,
        "out_channels": 6,
        "block_out_channels": [model_channels * mult for mult in channel_mult],
        "layers_per_block": int(options["num_res_blocks"]),
        "attention_levels": [2**level in attention_factors for level in range(len(channel_mult))],
        **head_kwargs,
        "encoder_hid_dim": int(options["xf_width"]),
        "super_resolution": bool(options["super_res"]),
        "inpainting": bool(options["inpaint"]),
        "resnet_time_scale_shift": "scale_shift" if options["use_scale_shift_norm"] else "default",
        "resblock_updown": bool(options["resblock_updown"]),
        "dropout": float(options["dropout"]),
    }
    text_encoder = {
        "vocab_size": vocab_size,
        "context_length": int(options["text_ctx"]),
        "hidden_size": int(options["xf_width"]),
        "num_hidden_layers": int(options["xf_layers"]),
        "num_attention_heads": int(options["xf_heads"]),
        "use_final_layer_norm": bool(options["xf_final_ln"]),
        "use_padding_embedding": bool(options["xf_padding"]),
    }
    respacing, sampler = NOTEBOOK_SAMPLING[model_type]
    scheduler = {
        "num_train_timesteps": int(options["diffusion_steps"]),
        "beta_schedule": options["noise_schedule"],
        "timestep_respacing": options["timestep_respacing"] or respacing,
        "sampler": sampler,
    }
    return GlideConfigs(unet=unet, text_encoder=text_encoder, scheduler=scheduler)


def _parse_ints(value, name: str) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    try:
        return tuple(int(v) for v in str(value).split(","))
    except ValueError:
        raise ValueError(f"Option {name} must be comma-separated integers, got {value!r}.") from None


def _check_model_type(model_type: str) -> None:
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}.")
