"""`diffusers-glide upsample`: text-conditional super-resolution of an image (and upsample-inpainting)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..cascade import make_generator
from ..samplers import FAST_UPSAMPLER_STEPS, sampling_steps
from . import files, loading
from .arguments import (
    CONFIGURED_SAMPLER,
    MASK_CONVENTION,
    UPSAMPLER_CONFIGURATION,
    add_overwrite_input,
    add_runtime_arguments,
    add_sampling_arguments,
    add_upsample_temp,
    default_sampler,
)

if TYPE_CHECKING:
    import argparse

NAME = "upsample"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `upsample` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="text-conditional super-resolution of an image (the embedded 32 -> 128 upsampler unless --model)",
        description=(
            "Upsample a low-resolution image, conditioned on a text prompt, with a GlideUpsamplePipeline (e.g. "
            "64x64 -> 256x256 for OpenAI's upsampler). The image must be square and at most the output size. An "
            "upsample-inpaint model also needs --inpaint_image and --mask."
        ),
    )
    parser.add_argument("prompt", help="the text prompt (usually the one that generated the image)")
    parser.add_argument("--image", type=Path, required=True, help="the low-resolution image (square)")
    parser.add_argument(
        "--model",
        help="GlideUpsamplePipeline folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use), e.g. a converted upsample checkpoint (default: the "
        "embedded 32 -> 128 shapes upsampler, or its upsample-inpaint sibling with --inpaint_image / --mask)",
    )
    parser.add_argument(
        "--inpaint_image",
        type=Path,
        help="upsample-inpaint models only: the known high-resolution image (resized to the output size)",
    )
    parser.add_argument("--mask", type=Path, help="upsample-inpaint models only: the mask, " + MASK_CONVENTION)
    add_sampling_arguments(
        parser,
        "GlideUpsamplePipeline",
        None,  # the sampler depends on the inputs: see `run`
        "glide-upsample.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
        FAST_UPSAMPLER_STEPS,
        UPSAMPLER_CONFIGURATION + "; --sampler ddim samples as OpenAI's notebook",
        f"{default_sampler('upsample')}; with --inpaint_image or --mask, {CONFIGURED_SAMPLER}",
    )
    add_upsample_temp(parser)
    add_overwrite_input(parser, "--image, --inpaint_image, --mask")
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Upsample --image (inpainting with --inpaint_image / --mask); returns the exit code."""
    from ..pipelines import GlideUpsamplePipeline

    device = loading.parse_device(args.device)
    files.check_outputs(args.output, args.num_images)
    inputs = {"--image": args.image, "--inpaint_image": args.inpaint_image, "--mask": args.mask}
    files.check_inputs_kept(args, files.numbered_outputs(args.output, args.num_images), inputs)
    inpainting = args.inpaint_image is not None or args.mask is not None
    kind = "upsample-inpaint" if inpainting else "upsample"
    sampler = args.sampler or default_sampler(kind)  # upsample-inpaint: the model's configured sampler (None)
    image = files.read_image(args.image, "image")
    inpaint_image = files.read_image(args.inpaint_image, "inpaint image") if args.inpaint_image is not None else None
    mask = files.read_image(args.mask, "mask") if args.mask is not None else None
    pipe = loading.load_stage(GlideUpsamplePipeline, args.model, kind, args, device, sampler)
    images = pipe(
        args.prompt,
        image=image,
        inpaint_image=inpaint_image,
        mask_image=mask,
        num_inference_steps=sampling_steps(sampler, args.steps, FAST_UPSAMPLER_STEPS),
        guidance_scale=args.guidance_scale,
        guidance_interval=args.guidance_interval,
        upsample_temp=args.upsample_temp,
        num_images_per_prompt=args.num_images,
        generator=make_generator(args.seed, device),
    ).images
    files.save(images, files.output_paths(args.output, len(images)))
    return 0
