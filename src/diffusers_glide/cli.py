"""The `diffusers-glide` command: generate, inpaint, edit and upsample images, convert OpenAI checkpoints, train.

    diffusers-glide generate "a red circle on a blue background" -o circle.png --seed 0
    diffusers-glide generate "an oil painting of a corgi" --model openai --upsampler openai -o corgi.png
    diffusers-glide generate "a corgi" --model openai --sampler ancestral --steps 100   # OpenAI's notebook
    diffusers-glide inpaint "a corgi in a field" --image grass.png --mask mask.png --model openai
    diffusers-glide img2img "a green square on a white background" --image in.png --strength 0.7 -o out.png
    diffusers-glide edit --image in.png --edit m1.png "a red circle" --edit m2.png "a blue square" -o out.png
    diffusers-glide upsample "a corgi" --image corgi_64.png --model openai
    diffusers-glide download all                            # OpenAI's released checkpoints, ahead of time
    diffusers-glide convert --checkpoint_path base.pt --model_type base --dump_path glide-base
    diffusers-glide serve                                   # the web app on the embedded models
    diffusers-glide train --output_dir runs/shapes --shapes --max_train_steps 1000
    diffusers-glide train-clip --output_dir runs/clip --shapes --max_train_steps 1000

Every `--model` is a pipeline folder (converted, trained or saved with `save_pretrained`), a Hub repo id, or
`openai`: OpenAI's released model of the command's stage, downloaded and converted into the cache on first use.
Without `--model`, each command uses the tiny model of its stage embedded in the package (32x32 shapes, upsampled
to 128x128); `--upsampler default` and `--clip default` name the embedded upsampler and noised CLIP.
Text to image and upsampling sample with DPM-Solver++ by default (15 and `FAST_UPSAMPLER_STEPS` steps), inpainting
with the model's own GLIDE sampler; `--sampler` / `--steps` choose (`diffusers_glide.samplers`). `--threads` sets
torch's CPU threads.
User errors (missing files, bad masks, unknown model folders, bad values) print `error: ...` and exit with 2.
Help and usage errors never import torch or diffusers (seconds of start-up): the commands import what they run.
"""

# This docstring is the top-level --help. Each subcommand is a module of `diffusers_glide.commands`, its flags beside
# its `run`; this module builds the parser from them, dispatches to the `run` that the command's parser sets
# (`set_defaults(run=...)`), sets --threads and turns the library's exceptions into `error:` lines (exit code 2).
# `python -m diffusers_glide.cli` runs it too (e.g. under `accelerate launch`).

from __future__ import annotations

import argparse
import sys

# Only light modules at the top: help, --version and usage errors must not wait for torch and diffusers
# (seconds). The commands import what they run; tests/test_cli_startup.py checks it.
from . import __version__
from .commands import convert, download, edit, generate, img2img, inpaint, serve, train, train_clip, upsample
from .commands.arguments import PROG
from .messages import one_line

# the subcommands, in the order of the help
COMMANDS = (generate, inpaint, img2img, edit, upsample, serve, download, convert, train, train_clip)


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The `diffusers-glide` argument parser, with its subcommands. Of the commands whose flags a torch-importing
    module defines (convert, train, train-clip), only the one that the command line `argv` names gets them; with
    `argv` None, every command gets all its flags."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands")
    for command in COMMANDS:
        command.register_subcommand(subparsers, argv)
    return parser


def _set_threads(threads: int) -> None:
    """--threads: the threads of torch's CPU operators (intra-op, as OMP_NUM_THREADS sets at start-up)."""
    import torch

    torch.set_num_threads(threads)


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=sys.stderr)
    return 1


def main(argv=None) -> int:
    """Run `diffusers-glide` with `argv` (default: `sys.argv[1:]`); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        if args.subcommand is None:
            parser.print_help(sys.stderr)
            return 2
        if hasattr(args, "check_arguments"):  # the converter's and the trainers' own checks of their flags
            args.check_arguments(args)
    except SystemExit as exit_:  # argparse: --help, --version, usage errors (2)
        return _exit_code(exit_)

    from .pipelines.memory import BatchTooLargeError

    if getattr(args, "threads", None) is not None:
        _set_threads(args.threads)
    try:
        return args.run(args, argv)
    except BatchTooLargeError as error:
        print(
            f"error: --num_images {getattr(args, 'num_images', 1)} is too many for one run: at most {error.max_images} fit in memory "
            f"({one_line(error)}). Run the command several times with different --seed values.",
            file=sys.stderr,
        )
        return 2
    except (ValueError, OSError, FloatingPointError) as error:  # OSError covers FileNotFoundError
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
