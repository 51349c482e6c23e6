"""The samplers shared by the command line and the web app (`diffusers_glide.samplers`)."""

import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from diffusers_glide import GlideScheduler
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.samplers import (
    FAST_STEPS,
    FAST_UPSAMPLER_STEPS,
    LABELS,
    SAMPLERS,
    build_scheduler,
    configured_sampler,
    sampling_steps,
    steps_range,
)


def _config(kind: str):
    return GlideScheduler.from_pretrained(embedded_model_path(kind), subfolder="scheduler").config


def test_the_samplers_and_their_fast_steps():
    assert SAMPLERS == ("dpm++", "ddim", "ancestral")
    assert LABELS == {"dpm++": "DPM-Solver++", "ddim": "GLIDE DDIM", "ancestral": "GLIDE ancestral (DDPM)"}
    assert (FAST_STEPS, FAST_UPSAMPLER_STEPS) == (15, 5)


def test_glide_samplers_keep_the_configured_respacing():
    config = _config("upsample")  # "fast27" DDIM
    ancestral = build_scheduler(config, "ancestral")
    assert isinstance(ancestral, GlideScheduler)
    assert (ancestral.config.sampler, ancestral.config.timestep_respacing) == ("ddpm", "fast27")
    ddim = build_scheduler(_config("base"), "ddim")
    assert (ddim.config.sampler, ddim.config.timestep_respacing) == ("ddim", "50")


def test_dpm_solver_is_built_quietly_and_can_be_swapped_back(capfd):
    config = _config("upsample")
    dpm = build_scheduler(config, "dpm++")
    assert isinstance(dpm, DPMSolverMultistepScheduler)
    # GLIDE's x0 clipping and the model's prediction type carry over
    assert (dpm.config.algorithm_type, dpm.config.solver_order) == ("dpmsolver++", 2)
    assert (dpm.config.thresholding, dpm.config.sample_max_value, dpm.config.prediction_type) == (True, 1.0, "sample")
    # diffusers logs "The config attributes {...} were passed to DPMSolverMultistepScheduler, but are not expected"
    assert capfd.readouterr().err == ""
    # the app swaps samplers from the current scheduler's config: GLIDE's keys survive a DPM-Solver++ in between
    back = build_scheduler(dpm.config, "ddim")
    assert (back.config.sampler, back.config.timestep_respacing) == ("ddim", "fast27")


def test_unknown_sampler():
    with pytest.raises(ValueError, match="Unknown sampler 'euler'; choose one of dpm\\+\\+, ddim, ancestral."):
        build_scheduler(_config("base"), "euler")


def test_sampling_steps():
    assert sampling_steps("dpm++", None, FAST_STEPS) == 15  # DPM-Solver++ has no configured count
    assert sampling_steps("dpm++", None, FAST_UPSAMPLER_STEPS) == 5
    assert sampling_steps("dpm++", 7, FAST_STEPS) == 7
    assert sampling_steps("ancestral", None, FAST_STEPS) is None  # the configured respacing
    assert sampling_steps("ddim", 100, FAST_STEPS) == 100
    assert sampling_steps(None, None, FAST_STEPS) is None  # the configured sampler and respacing


def test_configured_sampler():
    assert configured_sampler(_config("base")) == ("ancestral", 50)
    assert configured_sampler(_config("upsample")) == ("ddim", 27)  # "fast27"


def test_step_ranges_are_what_each_sampler_runs():
    config = _config("base")
    assert steps_range(config, "ancestral") == steps_range(config, "ddim") == (2, 1000)
    assert steps_range(config, "dpm++") == (1, 999)


@pytest.mark.parametrize("steps", [1, 2, 999])
def test_dpm_solver_stays_finite_over_every_step_count_it_accepts(steps):
    dpm = build_scheduler(_config("base"), "dpm++")
    dpm.set_timesteps(steps)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 3, 4, 4, generator=generator)
    for t in dpm.timesteps:
        # a stand-in model output (epsilon + variance channels): the scheduler's arithmetic is what is checked
        output = torch.randn(1, 6, 4, 4, generator=generator)
        sample = dpm.step(output, t, sample).prev_sample
    assert len(dpm.timesteps) == steps
    assert torch.isfinite(sample).all()
