"""`diffusers-glide generate`: text -> image, optionally upsampled; with `--prompts`, many prompts and seeds
(`diffusers_glide.batch_generation`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..batch_generation import seed_list
from ..cascade import make_generator
from ..samplers import FAST_STEPS, FAST_UPSAMPLER_STEPS
from . import files, loading
from .arguments import (
    BASE_CONFIGURATION,
    UPSAMPLER_CONFIGURATION,
    add_clip_arguments,
    add_runtime_arguments,
    add_sampler_arguments,
    add_sampling_arguments,
    add_upsample_temp,
    finite_float,
    pipeline_default,
    positive_int,
)

if TYPE_CHECKING:
    import argparse

    import torch

    from ..cascade import Cascade

NAME = "generate"


def register_subcommand(subparsers, argv: list[str] | None = None) -> argparse.ArgumentParser:
    """Add `generate` and its flags to `subparsers`."""
    parser = subparsers.add_parser(
        NAME,
        help="text -> image (the embedded 32x32 shapes model unless --model), optionally upsampled",
        description=(
            "Generate images from a text prompt with a GlidePipeline (text-to-image), and optionally upsample them "
            "with a GlideUpsamplePipeline (--upsampler). Without --model, the tiny text-to-image model embedded in "
            "the package is used (32x32 images of coloured shapes, e.g. 'a red circle on a blue background')."
        ),
    )
    parser.add_argument("prompt", nargs="?", help="the text prompt (or give a file of prompts with --prompts)")
    parser.add_argument(
        "--model",
        help="GlidePipeline folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use) (default: the embedded 32x32 shapes model)",
    )
    parser.add_argument(
        "--upsampler",
        help="GlideUpsamplePipeline folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use), or 'default' for the embedded 32 -> 128 upsampler: "
        "upsample every generated image with the same prompt. The upsampled images are written to the --output path(s); the base images next to them as "
        "<stem>-low<suffix> (e.g. glide-low.png, or glide-0-low.png with --num_images > 1)",
    )
    add_sampling_arguments(
        parser,
        "GlidePipeline",
        "base",
        "glide.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>. "
        "The format follows the suffix (.png, .jpg, ...); parent folders are created",
        FAST_STEPS,
        BASE_CONFIGURATION + "; --sampler ancestral --steps 100 is OpenAI's notebook",
    )
    upsampling = parser.add_argument_group("upsampling (with --upsampler)")
    add_sampler_arguments(
        upsampling,
        "upsample",
        FAST_UPSAMPLER_STEPS,
        UPSAMPLER_CONFIGURATION + "; --upsample_sampler ddim is OpenAI's notebook",
        flags=("--upsample_sampler", "--upsample_steps"),
    )
    upsampling.add_argument(
        "--upsample_guidance_scale",
        type=finite_float,
        default=pipeline_default("GlideUpsamplePipeline", "guidance_scale"),
        help="upsampler guidance scale (default: %(default)s, no guidance, as GLIDE)",
    )
    add_upsample_temp(upsampling)
    add_prompt_file_arguments(parser)
    add_clip_arguments(parser)
    add_runtime_arguments(parser)
    parser.set_defaults(run=run)
    return parser


def add_prompt_file_arguments(parser) -> None:
    """The flags of `generate --prompts` (`diffusers_glide.batch_generation`)."""
    group = parser.add_argument_group(
        "many prompts (--prompts): one image per prompt and seed, resumable, across processes with accelerate launch"
    )
    group.add_argument(
        "--prompts",
        type=Path,
        help='a text file with one prompt a line, or a .jsonl file with one object a line: {"prompt": ..., '
        '"seed": 3} or {"prompt": ..., "seeds": [0, 1]} (without either: --seeds, or --seed/--num_images). '
        "Blank lines are skipped. Line L with seed S writes <output_dir>/{L:05d}-seed{S}.png; images already "
        "there are not made again",
    )
    group.add_argument("--output_dir", type=Path, help="the folder of the images and their metadata.jsonl")
    group.add_argument(
        "--seeds",
        type=seed_list,
        help="seeds of every prompt, e.g. 0,1,2 (default: --seed, 0 if omitted, to --seed + --num_images - 1)",
    )
    group.add_argument(
        "--batch_size",
        type=positive_int,
        help="images sampled together (default: 1); each image's noise comes from its own seed, and with 1 each "
        "image equals the single-PROMPT command's with that --seed",
    )
    group.add_argument(
        "--low_output_dir",
        type=Path,
        help="with --upsampler: also write the images before upsampling to this folder, under the same names",
    )


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Sample (and upsample) the prompt, or with --prompts every prompt of the file; returns the exit code."""
    from ..batch_generation import run_batch_generation, uses_prompt_file

    if uses_prompt_file(args):
        return run_batch_generation(args, load_cascade)
    device = loading.parse_device(args.device)
    files.check_outputs(args.output, args.num_images, ("", "-low") if args.upsampler else ("",))
    cascade = load_cascade(args, device)
    generator = make_generator(args.seed, device)
    images = cascade.sample_base(args.prompt, generator, num_images_per_prompt=args.num_images)
    if cascade.upsampler is None:
        files.save(images, files.output_paths(args.output, len(images)))
        return 0
    files.save(images, files.output_paths(args.output, len(images), tag="-low"))
    upsampled = cascade.upsample(args.prompt, images, generator)
    files.save(upsampled, files.output_paths(args.output, len(upsampled)))
    return 0


def load_cascade(args: argparse.Namespace, device: torch.device) -> Cascade:
    """`generate`'s cascade on `device`: --model (with the noised CLIP of --clip) and --upsampler, with their
    sampling flags."""
    from ..cascade import Cascade

    progress = loading.show_progress(args)
    return Cascade.from_pretrained(
        args.model,
        args.upsampler,
        args.clip,
        device=device,
        dtype=loading.weights_dtype(args),
        progress=progress,
        sampler=args.sampler,
        steps=args.steps,
        guidance_scale=args.guidance_scale,
        guidance_interval=args.guidance_interval,
        clip_guidance_scale=args.clip_guidance_scale,
        upsample_sampler=args.upsample_sampler,
        upsample_steps=args.upsample_steps,
        upsample_guidance_scale=args.upsample_guidance_scale,
        upsample_temp=args.upsample_temp,
    )
