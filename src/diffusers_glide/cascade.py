"""The GLIDE cascade in one place: which model a stage name means, how a stage loads, and text -> base -> upsampler.

The command line (every sampling command and batch generation), the web app and the shapes evaluation load and
chain their pipelines here, so each rule lives once:

- a stage's model is a pipeline folder, a Hub repo id, or the embedded model of that stage when it is omitted or
  `"default"` ([`model_source`]);
- a stage loads in a dtype, on a device, with a sampler ([`load_pipeline`], [`load_clip_guidance`]);
- the fast path is the default: DPM-Solver++ with `FAST_STEPS` base and `FAST_UPSAMPLER_STEPS` upsampler steps
  (`diffusers_glide.samplers`);
- the base images go to the upsampler with the same prompt, and the same generator continues ([`Cascade`]).

Everything raises ordinary exceptions (`ValueError`, `OSError`); only the command line turns them into `error:`
lines, and only the web app into messages on the page. torch and the pipelines are imported when a function needs
them, so that the command line can read the names here and keep its help instant.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .embedded import embedded_model_path
from .openai_checkpoints import OPENAI
from .samplers import DPM_SOLVER, FAST_STEPS, FAST_UPSAMPLER_STEPS, configured_sampler, sampling_steps, use_sampler

if TYPE_CHECKING:
    from collections.abc import Callable

    import PIL.Image
    import torch

    from .pipelines import GlidePipeline, GlideUpsamplePipeline

DEFAULT = "default"  # the model name of a stage's embedded model
# torch device types that can sample (`meta` tensors, for one, hold no data)
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
# what a model name that is neither a folder nor a reachable Hub repo is told
MODEL_HINT = (
    'For OpenAI\'s released GLIDE use the model name "openai" (--model openai: downloaded and converted on first '
    "use); `diffusers-glide convert` converts a checkpoint of your own into a folder."
)
# the CLIP guidance scale when a CLIP model is named and no scale is (the notebook's)
CLIP_GUIDANCE_SCALE = 3.0
# the pipelines' own defaults that the cascade's settings share (tests/test_cascade.py checks them against the
# `__call__` signatures; written out so that reading them imports nothing)
BASE_GUIDANCE_SCALE = 3.0
UPSAMPLE_GUIDANCE_SCALE = 1.0
UPSAMPLE_TEMP = 0.997
# The sampler and steps each stage runs by default, wherever it runs (the command line's flags, the web app's
# controls): the fast path for text to image, image to image and upsampling. Inpainting (None) keeps the model's
# configured sampler: on the embedded inpainting model the 15-step runs of every sampler scored lower than its 50
# ancestral steps (docs/command_line.md).
DEFAULT_SAMPLING: dict[str, tuple[str, int] | None] = {
    "base": (DPM_SOLVER, FAST_STEPS),
    "upsample": (DPM_SOLVER, FAST_UPSAMPLER_STEPS),
    "base-inpaint": None,
    "upsample-inpaint": None,
}


def model_source(model: str | None, kind: str, progress: bool = True) -> str:
    """
    What `from_pretrained` loads for the model name `model` of a stage of `kind` ("base", "base-inpaint", "upsample",
    "upsample-inpaint" or "clip"): the embedded model when `model` is None or `"default"`; OpenAI's released model,
    converted in the cache (downloaded and converted on first use), when it is `"openai"`; else `model` itself, a
    folder or a Hub repo id. `progress=False` hides a first download's progress bar.
    """
    if model in (None, DEFAULT):
        return embedded_model_path(kind)
    if model == OPENAI:
        from .openai_checkpoints import openai_model_path

        return openai_model_path(kind, progress)
    return model


def default_sampling(kind: str, scheduler_config) -> tuple[str, int]:
    """The (sampler, steps) that a stage of `kind` runs by default (`DEFAULT_SAMPLING`), on a model whose scheduler
    has `scheduler_config` (inpainting: its configured sampler and respacing)."""
    if kind not in DEFAULT_SAMPLING:
        raise ValueError(f"Unknown stage {kind!r}; choose one of {', '.join(DEFAULT_SAMPLING)}.")
    return DEFAULT_SAMPLING[kind] or configured_sampler(scheduler_config)


def torch_device(name: str | torch.device) -> torch.device:
    """The torch device `name` names, if this machine can sample on it."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"not a torch device (cpu, cuda, cuda:0, mps, ...): {error}") from error
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"cannot sample on a {device.type!r} device; use one of {', '.join(DEVICE_TYPES)}.")
    backend = getattr(torch, device.type, None) if device.type != "mps" else torch.backends.mps
    if device.type != "cpu" and not (backend is not None and backend.is_available()):
        raise ValueError(f"{device.type.upper()} is not available on this machine (use the cpu).")
    return device


def make_generator(seed: int | None, device: str | torch.device) -> torch.Generator | None:
    """A generator on `device` seeded with `seed`; None (torch's global generator) without a seed."""
    import torch

    return None if seed is None else torch.Generator(device).manual_seed(seed)


@contextlib.contextmanager
def _model_hint(source: str):
    """Loading errors of a `source` that is no local path end with `MODEL_HINT` (what the name could have been)."""
    try:
        yield
    except OSError as error:
        if os.path.exists(source):
            raise
        raise OSError(f"{error} {MODEL_HINT}") from error


def load_pipeline(
    pipeline_class,
    model: str | None,
    kind: str,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    sampler: str | None = None,
    progress: bool = True,
):
    """
    `pipeline_class` loaded from `model` (see [`model_source`]; `kind` names the embedded model it defaults to),
    in `dtype` (default float32) on `device`, sampling with `sampler` (None: the folder's configured sampler).
    `progress=False` hides its denoising progress bar.
    """
    import torch

    source = model_source(model, kind, progress)
    with _model_hint(source):
        pipe = pipeline_class.from_pretrained(source, dtype=dtype or torch.float32)
    # float16 runs on the CPU (torch has CPU kernels for it): no warning per module that it cannot
    pipe = pipe.to(device, silence_dtype_warnings=True)
    if not progress:
        pipe.set_progress_bar_config(disable=True)
    if sampler is not None:
        use_sampler(pipe, sampler)
    return pipe


def load_clip_guidance(pipe, clip: str | None, dtype: torch.dtype | None = None, progress: bool = True) -> None:
    """Give `pipe` the noised CLIP of `clip` (a folder, a Hub repo id, `"default"` for the embedded one or `"openai"`
    for OpenAI's released one); None loads nothing. `progress=False` hides a first download's progress bar."""
    if clip is None:
        return
    source = model_source(clip, "clip", progress)
    with _model_hint(source):
        pipe.load_clip_guidance(source, dtype=dtype)


def clip_guidance_scale(scale: float | None, clip: str | None) -> float:
    """The CLIP guidance scale: `scale` when given, else `CLIP_GUIDANCE_SCALE` when a CLIP model is named, else 0."""
    if scale is not None:
        return scale
    return CLIP_GUIDANCE_SCALE if clip is not None else 0.0


def check_stage_sizes(base_size: int, inpaint=None, upsampler=None, inpaint_upsampler=None) -> None:
    """The stages of one cascade chain: inpainting at the base size, upsamplers larger than it, each upsampler of
    its kind (`upsampler` plain, `inpaint_upsampler` inpainting)."""
    if inpaint is not None and inpaint.unet.config.sample_size != base_size:
        size = inpaint.unet.config.sample_size
        raise ValueError(
            f"The inpainting model makes {size}x{size} images but the base model {base_size}x{base_size} ones: "
            "use the models of one cascade."
        )
    for name, stage in (("upsampler", upsampler), ("inpainting upsampler", inpaint_upsampler)):
        if stage is not None and stage.unet.config.sample_size <= base_size:
            size = stage.unet.config.sample_size
            raise ValueError(
                f"The {name} makes {size}x{size} images, no larger than the base model's {base_size}x{base_size}: "
                "use the models of one cascade."
            )
    if upsampler is not None and upsampler.unet.config.inpainting:
        raise ValueError("The upsampler is an inpainting upsampler: pass it as the inpainting upsampler.")
    if inpaint_upsampler is not None and not inpaint_upsampler.unet.config.inpainting:
        raise ValueError("The inpainting upsampler is not an inpainting model (load an upsample-inpaint folder).")


@dataclass
class CascadeOutput:
    """The images of a [`Cascade`] call: `images` are the final ones (upsampled when the cascade has an upsampler),
    `low_images` the base model's (the same list without an upsampler)."""

    images: list[PIL.Image.Image]
    low_images: list[PIL.Image.Image]


@dataclass
class Cascade:
    """
    GLIDE's text-to-image cascade: a text-to-image pipeline (`base`, with CLIP guidance when it holds a noised
    CLIP) and optionally an upsampler, with how each samples.

    A sampler of None keeps the pipeline's configured scheduler; steps of None run the fast path's step count
    with DPM-Solver++ and the configured respacing with GLIDE's samplers. Settings are plain fields: change them
    between calls, or build a new `Cascade` over the same pipelines (it holds no state of its own).

    ```py
    >>> cascade = Cascade.from_pretrained(upsampler="default")  # the embedded 32 -> 128 shapes cascade
    >>> out = cascade("a red circle on a blue background", generator=torch.Generator().manual_seed(0))
    >>> out.images[0].size, out.low_images[0].size
    ((128, 128), (32, 32))
    ```
    """

    base: GlidePipeline
    upsampler: GlideUpsamplePipeline | None = None
    sampler: str | None = DPM_SOLVER
    steps: int | None = None
    guidance_scale: float = BASE_GUIDANCE_SCALE
    guidance_interval: tuple[float, float] | None = None
    clip_guidance_scale: float = 0.0
    upsample_sampler: str | None = DPM_SOLVER
    upsample_steps: int | None = None
    upsample_guidance_scale: float = UPSAMPLE_GUIDANCE_SCALE
    upsample_temp: float = UPSAMPLE_TEMP

    def __post_init__(self):
        if self.upsampler is not None:
            check_stage_sizes(self.base.unet.config.sample_size, upsampler=self.upsampler)
            # before the base model samples: an inpainting upsampler would need inpaint_image / mask_image
            self.upsampler.check_inputs(
                image=[], inpaint_image=None, mask_image=None, upsample_temp=self.upsample_temp
            )

    @classmethod
    def from_pretrained(
        cls,
        model: str | None = None,
        upsampler: str | None = None,
        clip: str | None = None,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        progress: bool = True,
        **settings,
    ) -> Cascade:
        """
        The cascade of `model` (default: the embedded base model), `upsampler` (None: no upsampling; `"default"`:
        the embedded upsampler) and the noised CLIP of `clip` (None: none, unless the `model` folder holds one).
        `settings` are the other fields (`sampler`, `steps`, `guidance_scale`, ...); `clip_guidance_scale` defaults
        to `CLIP_GUIDANCE_SCALE` when `clip` is given.
        """
        from .pipelines import GlidePipeline, GlideUpsamplePipeline

        settings["clip_guidance_scale"] = clip_guidance_scale(settings.get("clip_guidance_scale"), clip)
        sampler = settings.get("sampler", DPM_SOLVER)
        base = load_pipeline(
            GlidePipeline, model, "base", device=device, dtype=dtype, sampler=sampler, progress=progress
        )
        load_clip_guidance(base, clip, dtype, progress)
        upsampler_pipe = None
        if upsampler is not None:
            upsampler_pipe = load_pipeline(
                GlideUpsamplePipeline,
                upsampler,
                "upsample",
                device=device,
                dtype=dtype,
                sampler=settings.get("upsample_sampler", DPM_SOLVER),
                progress=progress,
            )
        return cls(base=base, upsampler=upsampler_pipe, **settings)

    def sample_base(
        self,
        prompt: str | list[str],
        generator=None,
        num_images_per_prompt: int = 1,
        negative_prompt: str | list[str] | None = None,
        callback_on_step_end: Callable | None = None,
    ) -> list[PIL.Image.Image]:
        """The base model's images of `prompt` (PIL)."""
        if self.sampler is not None:
            use_sampler(self.base, self.sampler)
        return self.base(
            prompt,
            negative_prompt=negative_prompt,
            num_inference_steps=sampling_steps(self.sampler, self.steps, FAST_STEPS),
            guidance_scale=self.guidance_scale,
            guidance_interval=self.guidance_interval,
            num_images_per_prompt=num_images_per_prompt,
            generator=generator,
            clip_guidance_scale=self.clip_guidance_scale,
            callback_on_step_end=callback_on_step_end,
        ).images

    def upsample(
        self, prompt: str | list[str], images, generator=None, callback_on_step_end: Callable | None = None
    ) -> list[PIL.Image.Image]:
        """`images` upsampled with `prompt` (continue the base sampling's `generator`)."""
        if self.upsampler is None:
            raise ValueError("This cascade has no upsampler.")
        if self.upsample_sampler is not None:
            use_sampler(self.upsampler, self.upsample_sampler)
        return self.upsampler(
            prompt,
            image=images,
            num_inference_steps=sampling_steps(self.upsample_sampler, self.upsample_steps, FAST_UPSAMPLER_STEPS),
            guidance_scale=self.upsample_guidance_scale,
            upsample_temp=self.upsample_temp,
            generator=generator,
            callback_on_step_end=callback_on_step_end,
        ).images

    def __call__(
        self,
        prompt: str | list[str],
        generator=None,
        num_images_per_prompt: int = 1,
        negative_prompt: str | list[str] | None = None,
        callback_on_step_end: Callable | None = None,
    ) -> CascadeOutput:
        """Text -> base images -> upsampled images (when the cascade has an upsampler). `callback_on_step_end` is
        called at every step of both stages, as a pipeline calls it (e.g. to interrupt)."""
        low = self.sample_base(prompt, generator, num_images_per_prompt, negative_prompt, callback_on_step_end)
        if self.upsampler is None:
            return CascadeOutput(images=low, low_images=low)
        return CascadeOutput(images=self.upsample(prompt, low, generator, callback_on_step_end), low_images=low)
