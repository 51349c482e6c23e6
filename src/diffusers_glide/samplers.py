"""The samplers that the command line and the web app offer, and the steps they run by default.

- `"dpm++"`: diffusers' DPM-Solver++ (2M), the fast path. Built with `from_config` from GLIDE's scheduler
  configuration, it clips x0 to [-1, 1] as GLIDE does. On the embedded shapes model 15 steps land within 35.7 dB
  of a 1000-step sample from the same noise, with no loss in caption accuracy (`benchmarks/README.md`).
- `"ddim"` and `"ancestral"`: GLIDE's own DDIM and ancestral (DDPM) steps ([`GlideScheduler`]). Without a step
  count they run the folder's configured respacing: OpenAI's notebooks sample converted base models with 100
  ancestral steps and converted upsamplers with "fast27" DDIM.

Nothing here imports torch or diffusers until a scheduler is built, so the command line's help stays instant.
"""

from __future__ import annotations

import contextlib

DPM_SOLVER = "dpm++"
DDIM = "ddim"
ANCESTRAL = "ancestral"
SAMPLERS: tuple[str, ...] = (DPM_SOLVER, DDIM, ANCESTRAL)
# the web app's names for them
LABELS: dict[str, str] = {DPM_SOLVER: "DPM-Solver++", DDIM: "GLIDE DDIM", ANCESTRAL: "GLIDE ancestral (DDPM)"}
# GlideScheduler's `sampler` value of GLIDE's samplers
_GLIDE_SAMPLERS = {ANCESTRAL: "ddpm", DDIM: "ddim"}

# The recommended fast path's step counts (DPM-Solver++ has no configured count of its own).
FAST_STEPS = 15  # text-to-image (and image-to-image): 35.7 dB vs 1000 steps on the embedded model
FAST_UPSAMPLER_STEPS = 5  # upsamplers


@contextlib.contextmanager
def diffusers_errors_only():
    """Hide diffusers' warnings and info lines for the duration (restores the verbosity after); the web app also
    wraps `from_pipe` in it."""
    from diffusers.utils import logging as diffusers_logging

    verbosity = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity_error()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(verbosity)


def build_scheduler(config, sampler: str):
    """
    The scheduler of `sampler` (one of [`SAMPLERS`]) for a pipeline whose scheduler has `config`.

    GLIDE's samplers keep the configured respacing. DPM-Solver++ is built quietly: `from_config` would log that it
    ignores GLIDE's `timestep_respacing`, `sampler` and `eta` (it keeps them in its config, so a GLIDE sampler can be
    built back from it). The config's sizes are checked first, as GlideScheduler checks them: diffusers' constructors
    would allocate tables of any `num_train_timesteps` before failing.
    """
    from .schedulers.scheduling_glide import check_scheduler_config

    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}.")
    check_scheduler_config(config)
    if sampler in _GLIDE_SAMPLERS:
        from .schedulers import GlideScheduler

        return GlideScheduler.from_config(config, sampler=_GLIDE_SAMPLERS[sampler])
    from diffusers import DPMSolverMultistepScheduler

    with diffusers_errors_only():
        return DPMSolverMultistepScheduler.from_config(config)


def sampler_of(scheduler) -> str | None:
    """Which of [`SAMPLERS`] `scheduler` runs (None for a scheduler built elsewhere)."""
    name = type(scheduler).__name__
    if name == "DPMSolverMultistepScheduler":
        return DPM_SOLVER
    if name == "GlideScheduler":
        return DDIM if scheduler.config.get("sampler") == "ddim" else ANCESTRAL
    return None


def use_sampler(pipe, sampler: str) -> None:
    """Give `pipe` the scheduler of `sampler`, built from its current scheduler's configuration; a pipeline that
    already samples with `sampler` keeps its scheduler (so calling this before every call costs nothing)."""
    if sampler_of(pipe.scheduler) != sampler:
        pipe.scheduler = build_scheduler(pipe.scheduler.config, sampler)


def steps_range(config, sampler: str) -> tuple[int, int]:
    """The step counts `sampler` runs on a model whose scheduler has `config`: GLIDE's samplers 2 to
    `num_train_timesteps`; DPM-Solver++ 1 to the most for which its timesteps stay distinct (999 of 1000: see
    `check_distinct_timesteps`)."""
    if sampler in _GLIDE_SAMPLERS:
        return 2, config.num_train_timesteps
    from .pipelines.checks import most_distinct_steps

    return 1, most_distinct_steps(build_scheduler(config, sampler))


def sampling_steps(sampler: str, steps: int | None, fast_steps: int) -> int | None:
    """The `num_inference_steps` to run `sampler` with: `steps` when given, else `fast_steps` for DPM-Solver++ and
    None (the scheduler's configured respacing) for GLIDE's samplers."""
    if steps is not None:
        return steps
    return fast_steps if sampler == DPM_SOLVER else None


def configured_sampler(config) -> tuple[str, int]:
    """The sampler and step count of a GLIDE scheduler configuration (a respacing such as "fast27" counts as its
    number of steps, sampled uniformly)."""
    from .schedulers.respacing import space_timesteps

    sampler = DDIM if config.get("sampler") == "ddim" else ANCESTRAL
    respacing = config.get("timestep_respacing") or "50"
    return sampler, len(space_timesteps(config.num_train_timesteps, respacing))
