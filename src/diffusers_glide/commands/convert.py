"""`diffusers-glide convert`: an OpenAI GLIDE checkpoint -> a pipeline folder (`diffusers_glide.conversion.cli`).

The converter defines the flags, in a module that imports torch: the subcommand gets them only when the command
line names it (`builds_flags_of`), so that help and the other commands start without torch.
"""

from __future__ import annotations

import argparse
from functools import partial

from .arguments import builds_flags_of

NAME = "convert"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `convert` to `subparsers`, with the converter's flags when `argv` names it (or is None)."""
    parser = subparsers.add_parser(
        NAME,
        help="convert an OpenAI GLIDE checkpoint into a pipeline folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if builds_flags_of(NAME, argv):
        from ..conversion import cli as conversion_cli

        parser.description = conversion_cli.__doc__
        conversion_cli.add_convert_arguments(parser)
    parser.set_defaults(run=run, check_arguments=partial(check_arguments, parser))
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The converter's checks of its flags (usage errors exit through `parser.error`)."""
    from ..conversion.cli import check_convert_arguments

    check_convert_arguments(parser, args)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Convert (and optionally upload); returns the exit code."""
    from ..conversion.cli import run_conversion

    return run_conversion(args)
