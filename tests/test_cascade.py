"""diffusers_glide.cascade: which model a stage name means, how stages load, and text -> base -> upsampler."""

import inspect

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from diffusers_glide import GlideInpaintPipeline, GlidePipeline, GlideScheduler, GlideUpsamplePipeline
from diffusers_glide import cascade as cascade_module
from diffusers_glide.cascade import (
    DEFAULT,
    Cascade,
    check_stage_sizes,
    clip_guidance_scale,
    default_sampling,
    load_pipeline,
    model_source,
    torch_device,
)
from diffusers_glide.embedded import EMBEDDED_ROOT, embedded_model_path
from diffusers_glide.samplers import sampler_of, use_sampler

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def base():
    return GlidePipeline.from_pretrained(embedded_model_path("base"))


@pytest.fixture(scope="module")
def upsampler():
    return GlideUpsamplePipeline.from_pretrained(embedded_model_path("upsample"))


def _default(function, name):
    return inspect.signature(function).parameters[name].default


def test_the_shared_defaults_are_the_pipelines_own():
    assert cascade_module.BASE_GUIDANCE_SCALE == _default(GlidePipeline.__call__, "guidance_scale")
    assert cascade_module.UPSAMPLE_GUIDANCE_SCALE == _default(GlideUpsamplePipeline.__call__, "guidance_scale")
    assert cascade_module.UPSAMPLE_TEMP == _default(GlideUpsamplePipeline.__call__, "upsample_temp")


def test_model_source_names_the_embedded_model_when_omitted_or_default():
    assert model_source(None, "base") == str(EMBEDDED_ROOT / "glide-shapes-32")
    assert model_source(DEFAULT, "clip") == str(EMBEDDED_ROOT / "glide-shapes-clip-32")
    assert model_source("some/repo", "base") == "some/repo"
    with pytest.raises(ValueError, match="Unknown embedded model 'upsampler'"):
        model_source(None, "upsampler")


def test_torch_device_refuses_what_cannot_sample():
    assert torch_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^cannot sample on a 'meta' device; use one of cpu, cuda, mps, xpu\.$"):
        torch_device("meta")
    with pytest.raises(ValueError, match="^not a torch device"):
        torch_device("gpu7")


def test_default_sampling_is_the_fast_path_except_for_inpainting():
    inpaint = GlideInpaintPipeline.from_pretrained(embedded_model_path("base-inpaint"))
    assert default_sampling("base", inpaint.scheduler.config) == ("dpm++", 15)
    assert default_sampling("upsample", inpaint.scheduler.config) == ("dpm++", 5)
    # the embedded inpainting model's own configuration: 50 ancestral steps
    assert inpaint.scheduler.config.sampler == "ddpm" and inpaint.scheduler.config.timestep_respacing == "50"
    assert default_sampling("base-inpaint", inpaint.scheduler.config) == ("ancestral", 50)
    with pytest.raises(ValueError, match="Unknown stage 'inpaint'"):
        default_sampling("inpaint", inpaint.scheduler.config)


def test_clip_guidance_scale_defaults_to_three_with_a_clip_model():
    assert clip_guidance_scale(None, None) == 0.0
    assert clip_guidance_scale(None, "default") == 3.0
    assert clip_guidance_scale(1.5, "default") == 1.5
    assert clip_guidance_scale(0.0, "default") == 0.0


def test_use_sampler_keeps_a_scheduler_that_already_runs_the_sampler(base):
    pipe = GlidePipeline(**base.components)
    glide = pipe.scheduler
    use_sampler(pipe, "ancestral")
    assert pipe.scheduler is glide
    use_sampler(pipe, "dpm++")
    dpm = pipe.scheduler
    assert isinstance(dpm, DPMSolverMultistepScheduler) and sampler_of(dpm) == "dpm++"
    use_sampler(pipe, "dpm++")
    assert pipe.scheduler is dpm
    use_sampler(pipe, "ddim")
    assert isinstance(pipe.scheduler, GlideScheduler) and pipe.scheduler.config.sampler == "ddim"


def test_load_pipeline_applies_dtype_and_sampler():
    pipe = load_pipeline(GlidePipeline, None, "base", dtype=torch.bfloat16, sampler="ddim", progress=False)
    assert pipe.unet.dtype == torch.bfloat16
    assert pipe.scheduler.config.sampler == "ddim"
    assert pipe._progress_bar_config == {"disable": True}


def test_the_cascade_equals_the_pipelines_called_by_hand(base, upsampler):
    cascade = Cascade(base=GlidePipeline(**base.components), upsampler=GlideUpsamplePipeline(**upsampler.components))
    out = cascade(PROMPT, generator=torch.Generator().manual_seed(3), num_images_per_prompt=2)

    generator = torch.Generator().manual_seed(3)
    by_hand = GlidePipeline(
        **{**base.components, "scheduler": DPMSolverMultistepScheduler.from_config(base.scheduler.config)}
    )
    low = by_hand(PROMPT, num_inference_steps=15, guidance_scale=3.0, num_images_per_prompt=2, generator=generator)
    up_by_hand = GlideUpsamplePipeline(
        **{**upsampler.components, "scheduler": DPMSolverMultistepScheduler.from_config(upsampler.scheduler.config)}
    )
    high = up_by_hand(PROMPT, image=low.images, num_inference_steps=5, generator=generator)

    assert [image.size for image in out.low_images] == [(32, 32)] * 2
    assert [image.size for image in out.images] == [(128, 128)] * 2
    for got, expected in zip(out.low_images + out.images, low.images + high.images, strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_a_cascade_without_upsampler_returns_the_base_images(base):
    cascade = Cascade(base=GlidePipeline(**base.components), sampler="ddim", steps=4)
    out = cascade(PROMPT, generator=torch.Generator().manual_seed(0))
    assert out.images is out.low_images and out.images[0].size == (32, 32)
    assert cascade.base.scheduler.config.sampler == "ddim"
    with pytest.raises(ValueError, match="This cascade has no upsampler."):
        cascade.upsample(PROMPT, out.images)


def test_the_callback_runs_at_every_step_of_both_stages(base, upsampler):
    steps = []

    def record(pipe, step, timestep, callback_kwargs):
        steps.append((type(pipe).__name__, step))
        return callback_kwargs

    cascade = Cascade(
        base=GlidePipeline(**base.components),
        upsampler=GlideUpsamplePipeline(**upsampler.components),
        steps=3,
        upsample_steps=2,
    )
    cascade(PROMPT, generator=torch.Generator().manual_seed(0), callback_on_step_end=record)
    assert steps == [
        ("GlidePipeline", 0),
        ("GlidePipeline", 1),
        ("GlidePipeline", 2),
        ("GlideUpsamplePipeline", 0),
        ("GlideUpsamplePipeline", 1),
    ]


def test_the_stages_must_chain(base, upsampler):
    inpaint_upsampler = GlideUpsamplePipeline.from_pretrained(embedded_model_path("upsample-inpaint"))
    with pytest.raises(ValueError, match="The upsampler is an inpainting upsampler"):
        Cascade(base=base, upsampler=inpaint_upsampler)
    with pytest.raises(
        ValueError, match=r"The upsampler makes 128x128 images, no larger than the base model's 128x128"
    ):
        check_stage_sizes(128, upsampler=upsampler)
    with pytest.raises(ValueError, match="The inpainting model makes 32x32 images but the base model 64x64 ones"):
        check_stage_sizes(64, inpaint=base)
    with pytest.raises(ValueError, match="The inpainting upsampler is not an inpainting model"):
        check_stage_sizes(32, inpaint_upsampler=upsampler)
    check_stage_sizes(32, inpaint=base, upsampler=upsampler, inpaint_upsampler=inpaint_upsampler)


def test_from_pretrained_loads_the_embedded_cascade_with_clip():
    cascade = Cascade.from_pretrained(upsampler=DEFAULT, clip=DEFAULT, steps=2, upsample_steps=1, progress=False)
    assert cascade.clip_guidance_scale == 3.0
    assert cascade.base.clip_image_encoder is not None
    assert cascade.upsampler.unet.config.sample_size == 128
    assert sampler_of(cascade.base.scheduler) == sampler_of(cascade.upsampler.scheduler) == "dpm++"
