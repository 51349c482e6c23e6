"""`diffusers-glide edit`: a sequence of (mask, prompt) inpainting edits of one image, each on the previous result."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING

from ..batch_generation import seed_number
from ..cascade import make_generator
from ..samplers import FAST_STEPS, sampling_steps
from . import files, loading
from .arguments import (
    INPAINT_CONFIGURATION,
    MASK_CONVENTION,
    CLIError,
    add_overwrite_input,
    add_runtime_arguments,
    add_sampler_arguments,
    add_strength,
    finite_float,
    pipeline_default,
)

if TYPE_CHECKING:
    from ..pipelines import InpaintEdit

NAME = "edit"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `edit` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="apply a sequence of (mask, prompt) inpainting edits to one image, each on the previous result",
        description=(
            "Iterative editing: inpaint the --edit masks one after another, each edit starting from the result of "
            "the previous one (GlideInpaintPipeline; the embedded 32x32 inpainting model unless --model). The pixels "
            "outside every mask keep the values of --image resized to the model's size. Mask convention: "
            + MASK_CONVENTION
            + "."
        ),
    )
    parser.add_argument("--image", type=Path, required=True, help="the image to edit (any format Pillow reads)")
    parser.add_argument(
        "--edit",
        dest="edits",
        nargs="+",
        action="append",
        required=True,
        metavar="MASK PROMPT [STRENGTH]",
        help="one edit: its mask file, its prompt and optionally its strength (default: --strength); repeat the flag "
        "for each edit, in order",
    )
    parser.add_argument(
        "--model",
        help="GlideInpaintPipeline folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use) (default: the embedded 32x32 shapes inpainting model)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("glide-edit.png"), help="the final image (default: %(default)s)"
    )
    parser.add_argument(
        "--save_steps",
        action="store_true",
        help="also write the image after each edit but the last, as <stem>-step<k><suffix>",
    )
    parser.add_argument("--seed", type=seed_number, help="seed of the sampling noise of all edits, in [0, 2**64)")
    add_sampler_arguments(parser, "base-inpaint", FAST_STEPS, INPAINT_CONFIGURATION)
    parser.add_argument(
        "--guidance_scale",
        type=finite_float,
        default=pipeline_default("GlideInpaintPipeline", "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
    )
    add_strength(parser, "GlideInpaintPipeline", "the strength of the edits that give none")
    add_overwrite_input(parser, "--image, the masks of --edit")
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def _parse_edits(values: list[list[str]], default_strength: float) -> list[InpaintEdit]:
    """`--edit MASK PROMPT [STRENGTH]` values -> edits with their masks read (every file checked before sampling)."""
    from ..pipelines import InpaintEdit

    edits = []
    for number, value in enumerate(values, start=1):
        if len(value) not in (2, 3):
            raise CLIError(
                f"--edit {number} ({shlex.join(value)}): give MASK PROMPT [STRENGTH], e.g. --edit mask.png "
                '"a red circle" 0.7.'
            )
        strength = default_strength
        if len(value) == 3:
            try:
                strength = finite_float(value[2])
            except argparse.ArgumentTypeError as error:
                raise CLIError(f"--edit {number}: STRENGTH {error}") from None
        mask = files.read_image(Path(value[0]), f"mask of edit {number}")
        edits.append(InpaintEdit(prompt=value[1], mask_image=mask, strength=strength))
    return edits


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Apply the --edit edits to --image in order; returns the exit code."""
    from ..output_folders import check_output_image_paths
    from ..pipelines import GlideInpaintPipeline, apply_edits

    device = loading.parse_device(args.device)
    steps = [
        args.output.with_name(f"{args.output.stem}-step{k}{args.output.suffix}") for k in range(1, len(args.edits))
    ]
    outputs = [*(steps if args.save_steps else []), args.output]
    masks = {f"--edit {number} mask": Path(value[0]) for number, value in enumerate(args.edits, start=1)}
    files.check_inputs_kept(args, outputs, {"--image": args.image, **masks})
    edits = _parse_edits(args.edits, args.strength)
    check_output_image_paths(outputs)
    image = files.read_image(args.image, "image")
    pipe = loading.load_stage(GlideInpaintPipeline, args.model, "base-inpaint", args, device, args.sampler)
    results = apply_edits(
        pipe,
        image,
        edits,
        generator=make_generator(args.seed, device),
        num_inference_steps=sampling_steps(args.sampler, args.steps, FAST_STEPS),
        guidance_scale=args.guidance_scale,
    )
    files.save(results, outputs)
    return 0
