"""The pipelines the web app serves, loaded once, and the samplers its dropdowns name."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .. import samplers
from ..embedded import embedded_model_path
from ..pipelines import GlideImg2ImgPipeline, GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline

# the sampler dropdowns, by the names of `diffusers_glide.samplers.LABELS`: GLIDE's two samplers on uniformly
# respaced steps, and diffusers' DPM-Solver++
ANCESTRAL = samplers.LABELS[samplers.ANCESTRAL]
DDIM = samplers.LABELS[samplers.DDIM]
DPM_SOLVER = samplers.LABELS[samplers.DPM_SOLVER]
SAMPLERS: tuple[str, ...] = (ANCESTRAL, DDIM, DPM_SOLVER)
_SAMPLER_OF_LABEL = {label: sampler for sampler, label in samplers.LABELS.items()}


def _build_scheduler(config, label: str):
    if label not in _SAMPLER_OF_LABEL:
        raise ValueError(f"Unknown sampler {label!r}; choose one of {', '.join(SAMPLERS)}.")
    return samplers.build_scheduler(config, _SAMPLER_OF_LABEL[label])


def default_sampler(pipe) -> tuple[str, int]:
    """The sampler (its dropdown label) and step count of `pipe`'s own scheduler configuration (a respacing such as
    "fast27" counts as its number of steps, sampled uniformly)."""
    sampler, steps = samplers.configured_sampler(pipe.scheduler.config)
    return samplers.LABELS[sampler], steps


def steps_range(pipe, label: str) -> tuple[int, int]:
    """The step counts the sampler of dropdown `label` runs on `pipe` (DPM-Solver++ one fewer than GLIDE's: see
    `samplers.steps_range`)."""
    if label not in _SAMPLER_OF_LABEL:
        raise ValueError(f"Unknown sampler {label!r}; choose one of {', '.join(SAMPLERS)}.")
    return samplers.steps_range(pipe.scheduler.config, _SAMPLER_OF_LABEL[label])


@dataclass
class AppModels:
    """
    The pipelines of the app. `base` is required; a tab whose pipeline is missing is not shown.

    `img2img` shares the base pipeline's modules (`GlideImg2ImgPipeline.from_pipe`), so it costs no memory.
    """

    base: GlidePipeline
    inpaint: GlideInpaintPipeline | None = None
    upsampler: GlideUpsamplePipeline | None = None
    inpaint_upsampler: GlideUpsamplePipeline | None = None
    img2img: GlideImg2ImgPipeline | None = None
    _schedulers: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.img2img is None:
            # from_pipe logs diffusers' "modules ... kept in float32: []" for every module, an empty list here
            with samplers.diffusers_errors_only():
                self.img2img = GlideImg2ImgPipeline.from_pipe(self.base)
        self._check_sizes()

    @property
    def has_clip(self) -> bool:
        return getattr(self.base, "clip_image_encoder", None) is not None

    @property
    def base_size(self) -> int:
        return self.base.unet.config.sample_size

    def _check_sizes(self) -> None:
        """The stages must chain: inpainting at the base size, upsamplers taking the base size as their input."""
        if self.inpaint is not None and self.inpaint.unet.config.sample_size != self.base_size:
            size = self.inpaint.unet.config.sample_size
            raise ValueError(
                f"The inpainting model makes {size}x{size} images but the base model {self.base_size}x{self.base_size} "
                "ones: serve the models of one cascade."
            )
        for name, upsampler in (("upsampler", self.upsampler), ("inpainting upsampler", self.inpaint_upsampler)):
            if upsampler is not None and upsampler.unet.config.sample_size <= self.base_size:
                size = upsampler.unet.config.sample_size
                raise ValueError(
                    f"The {name} makes {size}x{size} images, no larger than the base model's "
                    f"{self.base_size}x{self.base_size}: serve the models of one cascade."
                )
        if self.upsampler is not None and self.upsampler.unet.config.inpainting:
            raise ValueError("The upsampler is an inpainting upsampler: pass it as the inpainting upsampler.")
        if self.inpaint_upsampler is not None and not self.inpaint_upsampler.unet.config.inpainting:
            raise ValueError("The inpainting upsampler is not an inpainting model (load an upsample-inpaint folder).")

    def use_sampler(self, pipe, sampler: str) -> None:
        """Give `pipe` the scheduler of `sampler` (built once per pipeline; callers hold the app's lock)."""
        key = (id(pipe), sampler)
        if key not in self._schedulers:
            self._schedulers[key] = _build_scheduler(pipe.scheduler.config, sampler)
        pipe.scheduler = self._schedulers[key]


def _load(pipeline_class, source: str, device, dtype):
    # float16 runs on the CPU (torch has CPU kernels for it): no warning per module that it cannot
    return pipeline_class.from_pretrained(source, dtype=dtype).to(device, silence_dtype_warnings=True)


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
    embedded = model is None

    def source(value: str | None, kind: str) -> str | None:
        if value == "default" or (value is None and embedded):
            return embedded_model_path(kind)
        return value

    base = _load(GlidePipeline, source(model, "base"), device, dtype)
    clip_source = source(clip, "clip")
    if clip_source is not None:
        base.load_clip_guidance(clip_source, dtype=dtype)
    loaded = {
        name: _load(pipeline_class, path, device, dtype) if path is not None else None
        for name, pipeline_class, path in (
            ("inpaint", GlideInpaintPipeline, source(inpaint, "base-inpaint")),
            ("upsampler", GlideUpsamplePipeline, source(upsampler, "upsample")),
            ("inpaint_upsampler", GlideUpsamplePipeline, source(inpaint_upsampler, "upsample-inpaint")),
        )
    }
    return AppModels(base=base, **loaded)
