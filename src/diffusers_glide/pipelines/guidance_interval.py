"""Classifier-free guidance in a limited interval of noise levels (Kynkäänniemi et al., 2024, "Applying Guidance in
a Limited Interval Improves Sample and Distribution Quality in Diffusion Models").

Outside the interval a step runs the UNet on the conditional rows only: half the work of a guided step. The
interval is given in the scheduler's training timesteps (0 = clean image, `num_train_timesteps - 1` = pure noise),
both ends included, as diffusers' Cosmos pipelines take their `guidance_interval`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

from .checks import check_number


def check_guidance_interval(interval, num_train_timesteps: int) -> tuple[float, float] | None:
    """`interval` as `(low, high)` floats with 0 <= low <= high, or `None` (guidance at every step)."""
    if interval is None:
        return None
    if isinstance(interval, (str, bytes)) or not isinstance(interval, Sequence) or len(interval) != 2:
        raise ValueError(
            f"`guidance_interval` must be a (low, high) pair of timesteps in [0, {num_train_timesteps - 1}] or None, "
            f"got {interval!r}."
        )
    for end, name in zip(interval, ("low", "high"), strict=True):
        if isinstance(end, bool) or not isinstance(end, numbers.Real):
            raise TypeError(f"`guidance_interval` {name} end must be a number, got {type(end).__name__} {end!r}.")
    low = check_number(interval[0], "guidance_interval[0]", minimum=0)
    high = check_number(interval[1], "guidance_interval[1]", minimum=0)
    if low > high:
        raise ValueError(f"`guidance_interval` must be (low, high) with low <= high, got {tuple(interval)!r}.")
    return low, high


def guided_steps(timesteps: torch.Tensor, interval: tuple[float, float] | None) -> list[bool]:
    """For each sampling timestep, whether it lies in `interval` (one device read for the whole loop)."""
    if interval is None:
        return [True] * len(timesteps)
    low, high = interval
    return [low <= t <= high for t in timesteps.tolist()]
