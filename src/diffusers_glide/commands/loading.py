"""How the commands load what they run: the torch device and dtype of their flags, and their models."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .arguments import CLIError

if TYPE_CHECKING:
    import torch


def parse_device(name: str) -> torch.device:
    """The torch device of `--device name`."""
    from ..cascade import torch_device

    try:
        return torch_device(name)
    except ValueError as error:
        raise CLIError(f"--device {name}: {error}") from error


def weights_dtype(args) -> torch.dtype:
    """The torch dtype of --dtype."""
    import torch

    return getattr(torch, args.dtype)


def show_progress(args) -> bool:
    """Whether the models show progress bars: not with --no_progress, which also hides diffusers' "Loading pipeline
    components" bar from here on."""
    if args.no_progress:
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    return not args.no_progress


def load_stage(pipeline_class, model: str | None, kind: str, args, device: torch.device, sampler: str | None = None):
    """`pipeline_class` from --model `model` (the embedded model of `kind` by default) in --dtype on `device`,
    sampling with `sampler` (None: its configured one)."""
    from ..cascade import load_pipeline

    progress = show_progress(args)
    return load_pipeline(
        pipeline_class, model, kind, device=device, dtype=weights_dtype(args), sampler=sampler, progress=progress
    )
