"""`diffusers-glide download`: fetch and convert OpenAI's released GLIDE checkpoints ahead of time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..openai_checkpoints import CACHE_ENV, OPENAI_MODEL_KINDS, RELEASE_URL
from .arguments import CLIError

if TYPE_CHECKING:
    import argparse

NAME = "download"
ALL = "all"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `download` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="fetch and convert OpenAI's released GLIDE checkpoints into the cache (what --model openai loads)",
        description=(
            f"Download OpenAI's released GLIDE checkpoints from {RELEASE_URL} and convert them into the cache "
            f"(${CACHE_ENV}, else ~/.cache/diffusers-glide), where `--model openai`, `--upsampler openai` and `--clip "
            "openai` find them. Those flags do the same on first use; this command does it ahead of time, e.g. "
            "before a machine goes offline. A stopped download resumes where it stopped."
        ),
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        choices=[*OPENAI_MODEL_KINDS, ALL],
        default=["base", "upsample"],
        help=f"the stages to fetch: {', '.join(OPENAI_MODEL_KINDS)} or {ALL} (default: base upsample, the "
        "text-to-image cascade)",
    )
    parser.add_argument(
        "--push_to_hub", action="store_true", help="also upload the converted stage to the Hub as --repo_id"
    )
    parser.add_argument("--repo_id", help="Hub repository of --push_to_hub, e.g. your-name/glide-base")
    parser.add_argument("--private", action="store_true", help="create the Hub repository as private")
    parser.add_argument("--no_progress", action="store_true", help="hide the download progress bars")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Fetch and convert the named stages; print their folders."""
    from ..openai_checkpoints import download_openai_models, push_openai_model

    kinds = list(OPENAI_MODEL_KINDS) if ALL in args.names else list(dict.fromkeys(args.names))
    if args.push_to_hub and (not args.repo_id or len(kinds) != 1):
        raise CLIError("--push_to_hub uploads one stage: give one NAME and its --repo_id.")
    if args.repo_id and not args.push_to_hub:
        raise CLIError("--repo_id goes with --push_to_hub.")
    for kind, folder in zip(kinds, download_openai_models(kinds, progress=not args.no_progress), strict=True):
        print(f"{kind}: {folder}")
    if args.push_to_hub:
        push_openai_model(kinds[0], args.repo_id, private=args.private)
        print(f"Uploaded to https://huggingface.co/{args.repo_id}")
    return 0
