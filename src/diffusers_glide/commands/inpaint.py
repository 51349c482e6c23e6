"""`diffusers-glide inpaint`: repaint the masked region of an image from a text prompt."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..cascade import make_generator
from ..samplers import FAST_STEPS, sampling_steps
from . import files, loading
from .arguments import (
    INPAINT_CONFIGURATION,
    MASK_CONVENTION,
    add_overwrite_input,
    add_runtime_arguments,
    add_sampling_arguments,
    add_strength,
)

if TYPE_CHECKING:
    import argparse

NAME = "inpaint"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `inpaint` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="repaint the masked region of an image from text (the embedded 32x32 inpainting model unless --model)",
        description=(
            "Repaint the masked region of an image from a text prompt with a GlideInpaintPipeline. The image and "
            "the mask are resized to the model's size. Mask convention: " + MASK_CONVENTION + "."
        ),
    )
    parser.add_argument("prompt", help="the text prompt describing the repainted region")
    parser.add_argument("--image", type=Path, required=True, help="the image to inpaint (any format Pillow reads)")
    parser.add_argument(
        "--mask",
        type=Path,
        required=True,
        help="the mask, an image with the aspect ratio of --image, read as grayscale and binarised at 50%%: "
        + MASK_CONVENTION,
    )
    parser.add_argument(
        "--model",
        help="GlideInpaintPipeline folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use), e.g. a converted base-inpaint checkpoint (default: the "
        "embedded 32x32 shapes inpainting model)",
    )
    add_sampling_arguments(
        parser,
        "GlideInpaintPipeline",
        "base-inpaint",
        "glide-inpaint.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
        FAST_STEPS,
        INPAINT_CONFIGURATION,
    )
    add_strength(
        parser,
        "GlideInpaintPipeline",
        "sketch-guided inpainting: below 1 the masked region starts from --image (paint a rough colour sketch "
        "into it) instead of noise",
    )
    add_overwrite_input(parser, "--image, --mask")
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Inpaint --image under --mask; returns the exit code."""
    from ..pipelines import GlideInpaintPipeline

    device = loading.parse_device(args.device)
    files.check_outputs(args.output, args.num_images)
    inputs = {"--image": args.image, "--mask": args.mask}
    files.check_inputs_kept(args, files.numbered_outputs(args.output, args.num_images), inputs)
    image = files.read_image(args.image, "image")
    mask = files.read_image(args.mask, "mask")
    pipe = loading.load_stage(GlideInpaintPipeline, args.model, "base-inpaint", args, device, args.sampler)
    images = pipe(
        args.prompt,
        image=image,
        mask_image=mask,
        strength=args.strength,
        num_inference_steps=sampling_steps(args.sampler, args.steps, FAST_STEPS),
        guidance_scale=args.guidance_scale,
        guidance_interval=args.guidance_interval,
        num_images_per_prompt=args.num_images,
        generator=make_generator(args.seed, device),
    ).images
    files.save(images, files.output_paths(args.output, len(images)))
    return 0
