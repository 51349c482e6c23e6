"""The pipelines the web app serves, loaded once through `diffusers_glide.cascade`, and the samplers its dropdowns
name."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from .. import cascade, samplers
from ..embedded import embedded_model_path
from ..pipelines import GlideImg2ImgPipeline, GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline

# the sampler dropdowns, by the names of `diffusers_glide.samplers.LABELS`: GLIDE's two samplers on uniformly
# respaced steps, and diffusers' DPM-Solver++
ANCESTRAL = samplers.LABELS[samplers.ANCESTRAL]
DDIM = samplers.LABELS[samplers.DDIM]
DPM_SOLVER = samplers.LABELS[samplers.DPM_SOLVER]
SAMPLERS: tuple[str, ...] = (ANCESTRAL, DDIM, DPM_SOLVER)
_SAMPLER_OF_LABEL = {label: sampler for sampler, label in samplers.LABELS.items()}


def sampler_of_label(label: str) -> str:
    """The sampler (one of `diffusers_glide.samplers.SAMPLERS`) of dropdown `label`."""
    if label not in _SAMPLER_OF_LABEL:
        raise ValueError(f"Unknown sampler {label!r}; choose one of {', '.join(SAMPLERS)}.")
    return _SAMPLER_OF_LABEL[label]


def default_sampling(kind: str, pipe) -> tuple[str, int]:
    """The sampler (its dropdown label) and step count that a control of stage `kind` ("base", "upsample",
    "base-inpaint", "upsample-inpaint") starts at on `pipe`: the command line's (`cascade.default_sampling`)."""
    sampler, steps = cascade.default_sampling(kind, pipe.scheduler.config)
    return samplers.LABELS[sampler], steps


def steps_range(pipe, label: str) -> tuple[int, int]:
    """The step counts the sampler of dropdown `label` runs on `pipe` (DPM-Solver++ one fewer than GLIDE's: see
    `samplers.steps_range`)."""
    return samplers.steps_range(pipe.scheduler.config, sampler_of_label(label))


@dataclass
class AppModels:
    """
    The pipelines of the app. `base` is required; a tab whose pipeline is missing is not shown.

    `img2img` shares the base pipeline's modules (`GlideImg2ImgPipeline.from_pipe`), so it costs no memory.
    `names` holds the model name each stage was loaded from ("base", "inpaint", "upsampler", "inpaint_upsampler",
    "clip": `cascade.DEFAULT` for an embedded model, `"openai"`, a folder or a Hub id), for the page's header; a
    missing "base" is read from the base pipeline's `name_or_path`.
    """

    base: GlidePipeline
    inpaint: GlideInpaintPipeline | None = None
    upsampler: GlideUpsamplePipeline | None = None
    inpaint_upsampler: GlideUpsamplePipeline | None = None
    img2img: GlideImg2ImgPipeline | None = None
    names: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self):
        if "base" not in self.names:
            source = getattr(self.base, "name_or_path", None)
            embedded = source is not None and os.path.abspath(source) == os.path.abspath(embedded_model_path("base"))
            self.names = {**self.names, "base": cascade.DEFAULT if embedded else source}
        if self.img2img is None:
            # from_pipe logs diffusers' "modules ... kept in float32: []" for every module, an empty list here
            with samplers.diffusers_errors_only():
                self.img2img = GlideImg2ImgPipeline.from_pipe(self.base)
        cascade.check_stage_sizes(self.base_size, self.inpaint, self.upsampler, self.inpaint_upsampler)

    @property
    def has_clip(self) -> bool:
        return getattr(self.base, "clip_image_encoder", None) is not None

    @property
    def base_size(self) -> int:
        return self.base.unet.config.sample_size


def load_app_models(
    model: str | None = None,
    inpaint: str | None = None,
    upsampler: str | None = None,
    inpaint_upsampler: str | None = None,
    clip: str | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> AppModels:
    """
    Load the app's pipelines from folders or Hub repo ids; `"default"` names the embedded model of that stage.

    With no `model`, every stage defaults to the embedded models (the whole shapes cascade with CLIP guidance);
    with a `model`, only the stages named are loaded.
    """
    every_stage = model is None

    def named(value: str | None) -> str | None:
        return cascade.DEFAULT if value is None and every_stage else value

    def load(pipeline_class, value: str | None, kind: str):
        return cascade.load_pipeline(pipeline_class, value, kind, device=device, dtype=dtype)

    base = load(GlidePipeline, model, "base")
    cascade.load_clip_guidance(base, named(clip), dtype)
    loaded = {
        name: load(pipeline_class, named(value), kind) if named(value) is not None else None
        for name, pipeline_class, value, kind in (
            ("inpaint", GlideInpaintPipeline, inpaint, "base-inpaint"),
            ("upsampler", GlideUpsamplePipeline, upsampler, "upsample"),
            ("inpaint_upsampler", GlideUpsamplePipeline, inpaint_upsampler, "upsample-inpaint"),
        )
    }
    names = {
        "base": model or cascade.DEFAULT,
        "inpaint": named(inpaint),
        "upsampler": named(upsampler),
        "inpaint_upsampler": named(inpaint_upsampler),
        "clip": named(clip),
    }
    return AppModels(base=base, **loaded, names=names)
