"""Checks of pipeline arguments that every GLIDE pipeline shares, each with an error naming the argument, the value
received and what was expected; and the guard that keeps two calls of one pipeline object from overlapping."""

import copy
import functools
import itertools
import math
import numbers
import os
import threading
from collections.abc import Callable

import torch
from huggingface_hub.utils import HFValidationError, validate_repo_id

# Guards the "a call is running" flag of every pipeline object (see `one_call_at_a_time`).
_CALL_FLAG_LOCK = threading.Lock()


def one_call_at_a_time(call: Callable) -> Callable:
    """Make a pipeline's `__call__` refuse to start while another call of the SAME pipeline object runs.

    A call keeps per-call state on the pipeline (the scheduler's timesteps, `guidance_scale`, `num_timesteps`,
    `interrupt`, offload hooks), as every diffusers pipeline does, so two overlapping calls would corrupt each
    other's images. Pipelines built over the same models (`type(pipe)(**pipe.components)` with a copied
    scheduler) may run in parallel threads.
    """

    @functools.wraps(call)
    def guarded(self, *args, **kwargs):
        with _CALL_FLAG_LOCK:
            if getattr(self, "_call_in_progress", False):
                raise RuntimeError(
                    f"This {type(self).__name__} is already running a call (in another thread, or from a callback): "
                    "a pipeline object runs one call at a time. For parallel calls, give each thread its own pipeline "
                    "over the same models, e.g. `type(pipe)(**{**pipe.components, 'scheduler': "
                    "copy.deepcopy(pipe.scheduler)})`."
                )
            self._call_in_progress = True
        try:
            return call(self, *args, **kwargs)
        finally:
            self._call_in_progress = False

    return guarded


def check_number(value, name: str, minimum: float | None = None, maximum: float | None = None) -> float:
    """`value` as a float if it is a finite real number in [minimum, maximum], else a clear error naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number, got {type(value).__name__} {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value!r}.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"`{name}` must be {bounds}, got {value!r}.")
    return float(value)


def check_tensor(value, name: str) -> torch.Tensor:
    """`value` if it is a torch tensor without NaN or infinity (one device sync per call, not per step)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}.")
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"`{name}` holds NaN or infinite values.")
    return value


def check_hub_id(name: str, what: str) -> str:
    """`name`, which is not a local folder, if it can be a Hub repo id; else a FileNotFoundError / OSError."""
    if os.path.exists(name):
        raise OSError(f"{name} is a file, not a {what}.")
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise FileNotFoundError(f"{name} is neither a local {what} nor a Hub repo id (such as owner/name).") from None
    return name


def check_generator(generator, batch: int) -> None:
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, list) and all(isinstance(g, torch.Generator) for g in generator):
        if len(generator) != batch:
            raise ValueError(
                f"Got {len(generator)} generators for a batch of {batch} images: give one per image, or one for all."
            )
        return
    raise TypeError(
        f"`generator` must be a torch.Generator or a list of them (one per image), got {type(generator).__name__} "
        f"{generator!r}; for a seed use `torch.Generator().manual_seed(seed)`."
    )


def check_prediction_type(unet_config, scheduler_config) -> None:
    """An x0-only UNet (`low_res_residual=True`) with a scheduler that reads its output as epsilon would denoise
    into a wrong image without any error: refuse it."""
    prediction_type = scheduler_config.get("prediction_type", "epsilon")
    if unet_config.get("low_res_residual", False) and prediction_type != "sample":
        raise ValueError(
            f"This UNet predicts x0 (`low_res_residual=True`) but the scheduler has prediction_type="
            f"{prediction_type!r}: use prediction_type='sample' (`SchedulerClass.from_config(pipe.scheduler.config)` "
            "keeps it)."
        )


def _distinct_timesteps(scheduler) -> bool:
    timesteps = scheduler.timesteps
    return bool((timesteps[:-1] > timesteps[1:]).all())


def most_distinct_steps(scheduler) -> int:
    """The most `num_inference_steps` for which the diffusers scheduler `scheduler` visits distinct timesteps.

    Found by bisection on a copy (`set_timesteps` changes the scheduler): the schedulers' spacings ("linspace",
    "leading", "trailing") repeat a timestep for every count above some limit and for none below it.
    """
    trial = copy.deepcopy(scheduler)
    low, high = 1, scheduler.config.num_train_timesteps
    while low < high:
        middle = (low + high + 1) // 2
        trial.set_timesteps(middle)
        if _distinct_timesteps(trial):
            low = middle
        else:
            high = middle - 1
    return low


def check_distinct_timesteps(scheduler, num_inference_steps: int) -> None:
    """Refuse a step count for which a diffusers scheduler visits one timestep twice.

    diffusers rounds evenly spaced real timesteps to integers: DPM-Solver++ ("linspace" spacing) spreads N + 1 points
    over [0, T - 1] and drops the last, so N = T (1000) puts two on timestep 500, and its multistep update divides by
    the zero step between them: NaN from there on. Called after `set_timesteps`, before any model call.
    """
    if _distinct_timesteps(scheduler):
        return
    timesteps = scheduler.timesteps.tolist()
    repeated = next(t for t, following in itertools.pairwise(timesteps) if following >= t)
    raise ValueError(
        f"`num_inference_steps`={num_inference_steps} is too many for {type(scheduler).__name__}: its timesteps "
        f"would visit {repeated} twice (a step of zero length). With this model's "
        f"{scheduler.config.num_train_timesteps} training timesteps it runs 1 to {most_distinct_steps(scheduler)} "
        "steps."
    )
