"""`diffusers-glide train-clip`: train GLIDE's noised CLIP for CLIP guidance (`diffusers_glide.training.clip_trainer`).

The trainer defines the flags, in a module that imports torch: the subcommand gets them only when the command line
names it (`builds_flags_of`), so that help and the other commands start without torch.
"""

from __future__ import annotations

import argparse
from functools import partial

from .arguments import builds_flags_of, command_arguments, recorded_command

NAME = "train-clip"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `train-clip` to `subparsers`, with the trainer's flags when `argv` names it (or is None)."""
    parser = subparsers.add_parser(
        NAME,
        help="train a noised CLIP for CLIP guidance, contrastively on noised images",
        description="Train GLIDE's noised CLIP (the classifier of CLIP guidance) from scratch: a contrastive loss "
        "between captions and images noised to random diffusion timesteps. The folder it writes loads with "
        "`GlidePipeline.load_clip_guidance` and `generate --clip`.",
    )
    if builds_flags_of(NAME, argv):
        from ..training.clip_trainer import add_clip_training_arguments

        add_clip_training_arguments(parser)
    parser.set_defaults(run=run, check_arguments=partial(check_arguments, parser))
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The trainer's checks of its flags (usage errors exit through `parser.error`)."""
    from ..training.clip_trainer import check_clip_training_arguments

    check_clip_training_arguments(parser, args)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Train the noised CLIP; the model card records the command line `argv`. Returns the exit code."""
    from ..training.clip_trainer import train_clip

    path = train_clip(command_arguments(args), command=recorded_command(NAME, argv))
    print(f"Saved the noised CLIP to {path}")
    return 0
