"""Stopping a training run at its first non-finite number, before anything of it is written.

One bad update (a learning rate far too high, a corrupt batch, an fp16 overflow) makes every later weight NaN, and a
run that goes on writes checkpoints, sample grids and a final model that are NaN throughout. The trainers check the
loss at every step, from the value they already read for their logs (no extra synchronisation with the device), and
the weights before each checkpoint, sample grid or saved model: one update can make weights infinite while the loss
computed before it was still finite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def check_finite_loss(value: float, step: int) -> None:
    """Raise `FloatingPointError` if the loss `value` of `step` is NaN or infinite."""
    if not math.isfinite(value):
        raise FloatingPointError(
            f"The training loss is {value} at step {step}: training stopped, nothing of step {step} was saved "
            "(earlier checkpoints are kept). Lower --learning_rate, or look for NaN or infinite values in the "
            "training images."
        )


def check_finite_weights(named_tensors: Iterable[tuple[str, torch.Tensor]], step: int, what: str) -> None:
    """
    Raise `FloatingPointError` before `what` is written if any of the `(name, tensor)` pairs holds NaN or infinite
    values at `step`; the message names the first few.
    """
    named = list(named_tensors)
    if not named:
        return
    with torch.no_grad():
        finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in named])  # one transfer for them all
    if bool(finite.all()):
        return
    bad = [name for (name, _), ok in zip(named, finite.tolist(), strict=True) if not ok]
    shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
    raise FloatingPointError(
        f"The weights hold NaN or infinite values after step {step} ({shown}): training stopped without writing "
        f"the {what} (earlier checkpoints are kept). Lower --learning_rate."
    )
