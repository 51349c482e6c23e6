"""`diffusers-glide train`: train or fine-tune a GLIDE model with accelerate (`diffusers_glide.training`).

The trainer defines the flags, in a module that imports torch: the subcommand gets them only when the command line
names it (`builds_flags_of`), so that help and the other commands start without torch.
"""

from __future__ import annotations

import argparse
from functools import partial

from .arguments import builds_flags_of, command_arguments, recorded_command

NAME = "train"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `train` to `subparsers`, with the trainer's flags when `argv` names it (or is None)."""
    parser = subparsers.add_parser(
        NAME,
        help="train or fine-tune a GLIDE model (any of the four variants) with accelerate",
        description="Train or fine-tune a GLIDE model (any of the four variants) with accelerate. For multi-GPU "
        "jobs: `accelerate launch -m diffusers_glide.training ...` (same flags).",
    )
    if builds_flags_of(NAME, argv):
        from ..training.arguments import add_training_arguments

        add_training_arguments(parser)
    parser.set_defaults(run=run, check_arguments=partial(check_arguments, parser))
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The trainer's checks of its flags (usage errors exit through `parser.error`)."""
    from ..training.arguments import check_training_arguments

    check_training_arguments(parser, args)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Train; the model card records the command line `argv`. Returns the exit code."""
    from ..training import train

    path = train(command_arguments(args), command=recorded_command(NAME, argv))
    print(f"Saved the trained pipeline to {path}")
    return 0
