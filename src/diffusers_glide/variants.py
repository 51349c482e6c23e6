"""The four GLIDE variants: the one table that the converter, the trainer, the pipelines and the CLI consult.

A variant is what OpenAI released as one checkpoint (`base.pt`, `upsample.pt`, `base_inpaint.pt`,
`upsample_inpaint.pt`). Its two flags are the `GlideUNet2DModel` config values that select the conditioning inputs;
its pipeline class is named as a string so that this module imports nothing from the rest of the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class GlideVariant:
    """One released GLIDE model type."""

    model_type: str  # the converter's and the trainer's `--model_type`
    pipeline_class: str  # the name of its class in `diffusers_glide.pipelines`
    super_resolution: bool  # the UNet also takes a low-resolution image (`GlideUNet2DModel` config)
    inpainting: bool  # the UNet also takes a masked image and its mask (`GlideUNet2DModel` config)
    notebook_respacing: str  # the `timestep_respacing` OpenAI's notebooks sample it with
    notebook_sampler: str  # and their sampler: "ddpm" (ancestral) or "ddim"

    @property
    def text_to_image(self) -> bool:
        """Whether the model makes images from text alone (no input image)."""
        return not (self.super_resolution or self.inpainting)


VARIANTS: dict[str, GlideVariant] = {
    variant.model_type: variant
    for variant in (
        GlideVariant("base", "GlidePipeline", False, False, "100", "ddpm"),
        GlideVariant("upsample", "GlideUpsamplePipeline", True, False, "fast27", "ddim"),
        GlideVariant("base-inpaint", "GlideInpaintPipeline", False, True, "100", "ddpm"),
        # inpaint.ipynb runs the upsample-inpaint stage with ancestral steps over "fast27", not DDIM.
        GlideVariant("upsample-inpaint", "GlideUpsamplePipeline", True, True, "fast27", "ddpm"),
    )
}
MODEL_TYPES: tuple[str, ...] = tuple(VARIANTS)
# Pipelines of another task over the models of a variant's pipeline (same components, so each loads the other's
# folders), as diffusers' img2img pipelines load text-to-image repos.
TASK_PIPELINE_CLASSES: dict[str, str] = {"GlideImg2ImgPipeline": "GlidePipeline"}
# Each pipeline class once: the variants' in table order, then the task pipelines.
PIPELINE_CLASSES: tuple[str, ...] = (
    *dict.fromkeys(variant.pipeline_class for variant in VARIANTS.values()),
    *TASK_PIPELINE_CLASSES,
)


def models_pipeline_class(pipeline_class: str) -> str:
    """The variant pipeline class whose models (and folders) `pipeline_class` runs: itself, or for a task pipeline
    (`TASK_PIPELINE_CLASSES`) the class it shares its components with."""
    return TASK_PIPELINE_CLASSES.get(pipeline_class, pipeline_class)


def get_variant(model_type: str) -> GlideVariant:
    """The variant of `model_type`, or a ValueError that lists the model types."""
    if model_type not in VARIANTS:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}.")
    return VARIANTS[model_type]


def variant_of_unet_config(config: Mapping | object) -> GlideVariant:
    """The variant whose conditioning inputs a `GlideUNet2DModel` config (a mapping or `unet.config`) declares."""
    get = config.get if isinstance(config, Mapping) else lambda name, default: getattr(config, name, default)
    flags = (bool(get("super_resolution", False)), bool(get("inpainting", False)))
    return next(v for v in VARIANTS.values() if (v.super_resolution, v.inpainting) == flags)
