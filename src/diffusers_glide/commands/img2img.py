"""`diffusers-glide img2img`: text-guided image to image (SDEdit) over a text-to-image model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..cascade import clip_guidance_scale, load_clip_guidance, make_generator
from ..samplers import FAST_STEPS, sampling_steps
from . import files, loading
from .arguments import (
    BASE_CONFIGURATION,
    add_clip_arguments,
    add_overwrite_input,
    add_runtime_arguments,
    add_sampling_arguments,
    add_strength,
)

if TYPE_CHECKING:
    import argparse

NAME = "img2img"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `img2img` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="turn an image towards a text prompt (SDEdit; the embedded 32x32 shapes model unless --model)",
        description=(
            "Text-guided image-to-image (SDEdit) with a GlideImg2ImgPipeline over a text-to-image model: the image is "
            "resized to the model's size, noised to --strength of the schedule and denoised towards the prompt. Small "
            "strengths keep the layout and colours, large ones follow the prompt; 1 ignores the image."
        ),
    )
    parser.add_argument("prompt", help="the text prompt")
    parser.add_argument("--image", type=Path, required=True, help="the starting image (any format Pillow reads)")
    parser.add_argument(
        "--model",
        help="text-to-image (GlidePipeline) folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use) (default: the embedded 32x32 shapes model)",
    )
    add_sampling_arguments(
        parser,
        "GlideImg2ImgPipeline",
        "base",
        "glide-img2img.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
        FAST_STEPS,
        BASE_CONFIGURATION,
    )
    add_strength(parser, "GlideImg2ImgPipeline", "how far the image is noised")
    add_overwrite_input(parser, "--image")
    add_clip_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Turn --image towards the prompt; returns the exit code."""
    from ..pipelines import GlideImg2ImgPipeline

    device = loading.parse_device(args.device)
    files.check_outputs(args.output, args.num_images)
    files.check_inputs_kept(args, files.numbered_outputs(args.output, args.num_images), {"--image": args.image})
    image = files.read_image(args.image, "image")
    pipe = loading.load_stage(GlideImg2ImgPipeline, args.model, "base", args, device, args.sampler)
    load_clip_guidance(pipe, args.clip, loading.weights_dtype(args), progress=not args.no_progress)
    images = pipe(
        args.prompt,
        image=image,
        strength=args.strength,
        num_inference_steps=sampling_steps(args.sampler, args.steps, FAST_STEPS),
        guidance_scale=args.guidance_scale,
        guidance_interval=args.guidance_interval,
        num_images_per_prompt=args.num_images,
        generator=make_generator(args.seed, device),
        clip_guidance_scale=clip_guidance_scale(args.clip_guidance_scale, args.clip),
    ).images
    files.save(images, files.output_paths(args.output, len(images)))
    return 0
