"""The `diffusers-glide` command: generate, inpaint, edit and upsample images, convert OpenAI checkpoints, train.

    diffusers-glide generate "a red circle on a blue background" -o circle.png --seed 0
    diffusers-glide generate "an oil painting of a corgi" --model glide-base --upsampler glide-upsample
    diffusers-glide generate "a corgi" --model glide-base --sampler ancestral --steps 100   # OpenAI's notebook
    diffusers-glide inpaint "a corgi in a field" --image grass.png --mask mask.png --model glide-base-inpaint
    diffusers-glide img2img "a green square on a white background" --image in.png --strength 0.7 -o out.png
    diffusers-glide edit --image in.png --edit m1.png "a red circle" --edit m2.png "a blue square" -o out.png
    diffusers-glide upsample "a corgi" --image corgi_64.png --model glide-upsample
    diffusers-glide convert --checkpoint_path base.pt --model_type base --vocab_dir openai --dump_path glide-base
    diffusers-glide serve                                   # the web app on the embedded models
    diffusers-glide train --output_dir runs/shapes --shapes --max_train_steps 1000
    diffusers-glide train-clip --output_dir runs/clip --shapes --max_train_steps 1000

Every `--model` is a pipeline folder (converted, trained or saved with `save_pretrained`) or a Hub repo id.
Without `--model`, each command uses the tiny model of its stage embedded in the package (32x32 shapes, upsampled
to 128x128); `--upsampler default` and `--clip default` name the embedded upsampler and noised CLIP.
Text to image and upsampling sample with DPM-Solver++ by default (15 and `FAST_UPSAMPLER_STEPS` steps), inpainting
with the model's own GLIDE sampler; `--sampler` / `--steps` choose (`diffusers_glide.samplers`). `--threads` sets
torch's CPU threads.
User errors (missing files, bad masks, unknown model folders, bad values) print `error: ...` and exit with 2.
Help and usage errors never import torch or diffusers (seconds of start-up): the commands import what they run.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

# Only light modules at the top: help, --version and usage errors must not wait for torch and diffusers
# (seconds). The commands import what they run; tests/test_cli_startup.py checks it.
from . import __version__
from .batch_generation import seed_list, seed_number
from .cascade import clip_guidance_scale, load_clip_guidance, make_generator
from .messages import one_line
from .samplers import DPM_SOLVER, FAST_STEPS, FAST_UPSAMPLER_STEPS, SAMPLERS, sampling_steps

if TYPE_CHECKING:
    import PIL.Image
    import torch

    from .cascade import Cascade
    from .pipelines import InpaintEdit

PROG = "diffusers-glide"
MASK_CONVENTION = "white = repaint, black = keep (the diffusers convention; GLIDE's own masks are the opposite)"
OVERWRITE_INPUT = "--overwrite_input"  # the flag that lets an output replace an input file


class CLIError(ValueError):
    """A user error with a message ready to print."""


# ---------------------------------------------------------------------------------------------------------------
# Argument types


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def _port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {value!r}") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {number}")
    return number


def _finite_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    number = _finite_float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return number


# The pipelines' `__call__` defaults that the flags share, written out because reading them from the signatures
# would import torch; tests/test_cli_startup.py checks them against the signatures.
PIPELINE_DEFAULTS: dict[str, dict[str, float]] = {
    "GlidePipeline": {"guidance_scale": 3.0},
    "GlideImg2ImgPipeline": {"guidance_scale": 3.0, "strength": 0.8},
    "GlideInpaintPipeline": {"guidance_scale": 5.0, "strength": 1.0},
    "GlideUpsamplePipeline": {"guidance_scale": 1.0, "upsample_temp": 0.997},
}
# the weights dtypes, by their torch names (`getattr(torch, name)`); the converter's DTYPES has the same keys (tested)
DTYPE_NAMES = ("float32", "float16", "bfloat16")
# what `--steps` runs with GLIDE's samplers (the folders' scheduler configurations), for the help
BASE_CONFIGURATION = "100 steps for converted base models, 50 for the embedded one"
UPSAMPLER_CONFIGURATION = '"fast27" (27 steps) for converted upsamplers and the embedded one'
INPAINT_CONFIGURATION = "100 steps for converted base-inpaint models, 50 for the embedded one"
# Inpainting keeps the model's configured sampler by default: on the embedded inpainting model the 15-step runs
# of every sampler scored lower than its 50 ancestral steps (README, "Command line").
INPAINT_SAMPLER = "the model's configured sampler"


def _default(pipeline_class: str, name: str) -> float:
    """The default of a pipeline `__call__` argument, so the help shows the pipeline's own defaults."""
    return PIPELINE_DEFAULTS[pipeline_class][name]


# ---------------------------------------------------------------------------------------------------------------
# Parser


def _add_sampler_arguments(
    parser, fast_steps: int, configured: str, flags=("--sampler", "--steps"), default_help: str | None = None
) -> None:
    """`--sampler` and `--steps` (default: `fast_steps` with DPM-Solver++, else the scheduler configuration, which
    `configured` describes). The sampler defaults to DPM-Solver++, the fast path; with `default_help`, to None (the
    model's configured sampler, or what `default_help` says)."""
    sampler_flag, steps_flag = flags
    parser.add_argument(
        sampler_flag,
        choices=SAMPLERS,
        default=DPM_SOLVER if default_help is None else None,
        help="dpm++ (diffusers' DPM-Solver++, the fast path), or GLIDE's own ddim or ancestral sampler "
        f"(default: {default_help or DPM_SOLVER})",
    )
    parser.add_argument(
        steps_flag,
        type=_positive_int,
        help=f"denoising steps (default: {fast_steps} with dpm++, otherwise the model's scheduler configuration: "
        f"{configured})",
    )


class _StoreOutput(argparse.Action):
    """Stores -o/--output and notes that it was given (`generate --prompts` writes to --output_dir instead)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.output_given = True


def _add_sampling_arguments(
    parser,
    pipeline_class: str,
    output_default: str,
    output_help: str,
    fast_steps: int,
    configured: str,
    sampler_default_help: str | None = None,
) -> None:
    parser.add_argument(
        "-o", "--output", type=Path, default=Path(output_default), action=_StoreOutput, help=output_help
    )
    parser.add_argument("--num_images", type=_positive_int, default=1, help="images to sample (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=seed_number,
        help="seed of the sampling noise, in [0, 2**64): the same seed gives the same images",
    )
    _add_sampler_arguments(parser, fast_steps, configured, default_help=sampler_default_help)
    parser.add_argument(
        "--guidance_scale",
        type=_finite_float,
        default=_default(pipeline_class, "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
    )
    parser.add_argument(
        "--guidance_interval",
        nargs=2,
        type=_non_negative_float,
        metavar=("LOW", "HIGH"),
        help="guide only the steps whose timestep t (0 = clean ... 999 = pure noise) has LOW <= t <= HIGH; the "
        "others run half the batch (default: every step). E.g. 300 999 (see the README's pipelines section)",
    )


def _add_strength(parser, pipeline_class, what: str) -> None:
    parser.add_argument(
        "--strength",
        type=_finite_float,
        default=_default(pipeline_class, "strength"),
        help=f"{what}, in (0, 1]: the last int(steps * strength) of the --steps steps run, from the image noised "
        "to that point (default: %(default)s)",
    )


def _add_clip_arguments(parser) -> None:
    clip = parser.add_argument_group("CLIP guidance")
    clip.add_argument(
        "--clip",
        help="noised-CLIP folder or Hub repo id (converted with `convert --model_type clip` or trained with "
        "`train-clip`), or 'default' for the embedded 32x32 one; not needed when the --model folder already holds "
        "the CLIP components",
    )
    clip.add_argument(
        "--clip_guidance_scale",
        type=_non_negative_float,
        help="CLIP guidance scale; 0 disables it (default: 3.0, the notebook's, with --clip; otherwise 0). "
        "Combines with --guidance_scale; the notebook uses --guidance_scale 1 with CLIP guidance",
    )


def _add_overwrite_input(parser, inputs: str) -> None:
    parser.add_argument(
        OVERWRITE_INPUT,
        action="store_true",
        help=f"let an output replace an input file ({inputs}); without it, a run that would write over one of its "
        "inputs (the same path, a symlink or a hard link to it) is refused before anything loads",
    )


def _add_device_arguments(parser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="weights dtype (default: float32)")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        help="CPU threads of torch's operators (default: torch's, one per core). Lower it when other busy processes "
        "share the cores: threads that wait for each other can make a run many times slower; 1 is steady",
    )


def _add_runtime_arguments(parser) -> None:
    _add_device_arguments(parser)
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bars of the denoising loops")


def _add_upsample_temp(parser, flag: str = "--upsample_temp") -> None:
    parser.add_argument(
        flag,
        dest="upsample_temp",
        type=_non_negative_float,
        default=_default("GlideUpsamplePipeline", "upsample_temp"),
        help="GLIDE's upsample temperature: the initial noise is N(0, 1) times this (default: %(default)s)",
    )


def _add_prompt_file_arguments(parser) -> None:
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
        type=_positive_int,
        help="images sampled together (default: 1); each image's noise comes from its own seed, and with 1 each "
        "image equals the single-PROMPT command's with that --seed",
    )
    group.add_argument(
        "--low_output_dir",
        type=Path,
        help="with --upsampler: also write the images before upsampling to this folder, under the same names",
    )


def _build_parsers(
    flags_of: Iterable[str] = ("convert", "train", "train-clip"),
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and the subcommands' parsers. Of convert, train and train-clip, only those in `flags_of` get
    their flags (see `_IMPORTED_FLAGS`)."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(dest="subcommand", metavar="COMMAND", title="commands")
    sub = {}

    # generate ---------------------------------------------------------------------------------------------
    generate = sub["generate"] = subparsers.add_parser(
        "generate",
        help="text -> image (the embedded 32x32 shapes model unless --model), optionally upsampled",
        description=(
            "Generate images from a text prompt with a GlidePipeline (text-to-image), and optionally upsample them "
            "with a GlideUpsamplePipeline (--upsampler). Without --model, the tiny text-to-image model embedded in "
            "the package is used (32x32 images of coloured shapes, e.g. 'a red circle on a blue background')."
        ),
    )
    generate.add_argument("prompt", nargs="?", help="the text prompt (or give a file of prompts with --prompts)")
    generate.add_argument(
        "--model",
        help="GlidePipeline folder or Hub repo id (default: the embedded 32x32 shapes model)",
    )
    generate.add_argument(
        "--upsampler",
        help="GlideUpsamplePipeline folder or Hub repo id, or 'default' for the embedded 32 -> 128 upsampler: "
        "upsample every generated image with the same prompt. The upsampled images are written to the --output path(s); the base images next to them as "
        "<stem>-low<suffix> (e.g. glide-low.png, or glide-0-low.png with --num_images > 1)",
    )
    _add_sampling_arguments(
        generate,
        "GlidePipeline",
        "glide.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>. "
        "The format follows the suffix (.png, .jpg, ...); parent folders are created",
        FAST_STEPS,
        BASE_CONFIGURATION + "; --sampler ancestral --steps 100 is OpenAI's notebook",
    )
    upsampling = generate.add_argument_group("upsampling (with --upsampler)")
    _add_sampler_arguments(
        upsampling,
        FAST_UPSAMPLER_STEPS,
        UPSAMPLER_CONFIGURATION + "; --upsample_sampler ddim is OpenAI's notebook",
        flags=("--upsample_sampler", "--upsample_steps"),
    )
    upsampling.add_argument(
        "--upsample_guidance_scale",
        type=_finite_float,
        default=_default("GlideUpsamplePipeline", "guidance_scale"),
        help="upsampler guidance scale (default: %(default)s, no guidance, as GLIDE)",
    )
    _add_upsample_temp(upsampling)
    _add_prompt_file_arguments(generate)
    _add_clip_arguments(generate)
    _add_runtime_arguments(generate)

    # inpaint ----------------------------------------------------------------------------------------------
    inpaint = sub["inpaint"] = subparsers.add_parser(
        "inpaint",
        help="repaint the masked region of an image from text (the embedded 32x32 inpainting model unless --model)",
        description=(
            "Repaint the masked region of an image from a text prompt with a GlideInpaintPipeline. The image and "
            "the mask are resized to the model's size. Mask convention: " + MASK_CONVENTION + "."
        ),
    )
    inpaint.add_argument("prompt", help="the text prompt describing the repainted region")
    inpaint.add_argument("--image", type=Path, required=True, help="the image to inpaint (any format Pillow reads)")
    inpaint.add_argument(
        "--mask",
        type=Path,
        required=True,
        help="the mask, an image with the aspect ratio of --image, read as grayscale and binarised at 50%%: "
        + MASK_CONVENTION,
    )
    inpaint.add_argument(
        "--model",
        help="GlideInpaintPipeline folder or Hub repo id, e.g. a converted base-inpaint checkpoint (default: the "
        "embedded 32x32 shapes inpainting model)",
    )
    _add_sampling_arguments(
        inpaint,
        "GlideInpaintPipeline",
        "glide-inpaint.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
        FAST_STEPS,
        INPAINT_CONFIGURATION,
        INPAINT_SAMPLER,
    )
    _add_strength(
        inpaint,
        "GlideInpaintPipeline",
        "sketch-guided inpainting: below 1 the masked region starts from --image (paint a rough colour sketch "
        "into it) instead of noise",
    )
    _add_overwrite_input(inpaint, "--image, --mask")
    _add_runtime_arguments(inpaint)

    # img2img ----------------------------------------------------------------------------------------------
    img2img = sub["img2img"] = subparsers.add_parser(
        "img2img",
        help="turn an image towards a text prompt (SDEdit; the embedded 32x32 shapes model unless --model)",
        description=(
            "Text-guided image-to-image (SDEdit) with a GlideImg2ImgPipeline over a text-to-image model: the image is "
            "resized to the model's size, noised to --strength of the schedule and denoised towards the prompt. Small "
            "strengths keep the layout and colours, large ones follow the prompt; 1 ignores the image."
        ),
    )
    img2img.add_argument("prompt", help="the text prompt")
    img2img.add_argument("--image", type=Path, required=True, help="the starting image (any format Pillow reads)")
    img2img.add_argument(
        "--model",
        help="text-to-image (GlidePipeline) folder or Hub repo id (default: the embedded 32x32 shapes model)",
    )
    _add_sampling_arguments(
        img2img,
        "GlideImg2ImgPipeline",
        "glide-img2img.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
        FAST_STEPS,
        BASE_CONFIGURATION,
    )
    _add_strength(img2img, "GlideImg2ImgPipeline", "how far the image is noised")
    _add_overwrite_input(img2img, "--image")
    _add_clip_arguments(img2img)
    _add_runtime_arguments(img2img)

    # edit -------------------------------------------------------------------------------------------------
    edit = sub["edit"] = subparsers.add_parser(
        "edit",
        help="apply a sequence of (mask, prompt) inpainting edits to one image, each on the previous result",
        description=(
            "Iterative editing: inpaint the --edit masks one after another, each edit starting from the result of "
            "the previous one (GlideInpaintPipeline; the embedded 32x32 inpainting model unless --model). The pixels "
            "outside every mask keep the values of --image resized to the model's size. Mask convention: "
            + MASK_CONVENTION
            + "."
        ),
    )
    edit.add_argument("--image", type=Path, required=True, help="the image to edit (any format Pillow reads)")
    edit.add_argument(
        "--edit",
        dest="edits",
        nargs="+",
        action="append",
        required=True,
        metavar="MASK PROMPT [STRENGTH]",
        help="one edit: its mask file, its prompt and optionally its strength (default: --strength); repeat the flag "
        "for each edit, in order",
    )
    edit.add_argument(
        "--model",
        help="GlideInpaintPipeline folder or Hub repo id (default: the embedded 32x32 shapes inpainting model)",
    )
    edit.add_argument(
        "-o", "--output", type=Path, default=Path("glide-edit.png"), help="the final image (default: %(default)s)"
    )
    edit.add_argument(
        "--save_steps",
        action="store_true",
        help="also write the image after each edit but the last, as <stem>-step<k><suffix>",
    )
    edit.add_argument("--seed", type=seed_number, help="seed of the sampling noise of all edits, in [0, 2**64)")
    _add_sampler_arguments(edit, FAST_STEPS, INPAINT_CONFIGURATION, default_help=INPAINT_SAMPLER)
    edit.add_argument(
        "--guidance_scale",
        type=_finite_float,
        default=_default("GlideInpaintPipeline", "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
    )
    _add_strength(edit, "GlideInpaintPipeline", "the strength of the edits that give none")
    _add_overwrite_input(edit, "--image, the masks of --edit")
    _add_runtime_arguments(edit)

    # upsample ---------------------------------------------------------------------------------------------
    upsample = sub["upsample"] = subparsers.add_parser(
        "upsample",
        help="text-conditional super-resolution of an image (the embedded 32 -> 128 upsampler unless --model)",
        description=(
            "Upsample a low-resolution image, conditioned on a text prompt, with a GlideUpsamplePipeline (e.g. "
            "64x64 -> 256x256 for OpenAI's upsampler). The image must be square and at most the output size. An "
            "upsample-inpaint model also needs --inpaint_image and --mask."
        ),
    )
    upsample.add_argument("prompt", help="the text prompt (usually the one that generated the image)")
    upsample.add_argument("--image", type=Path, required=True, help="the low-resolution image (square)")
    upsample.add_argument(
        "--model",
        help="GlideUpsamplePipeline folder or Hub repo id, e.g. a converted upsample checkpoint (default: the "
        "embedded 32 -> 128 shapes upsampler, or its upsample-inpaint sibling with --inpaint_image / --mask)",
    )
    upsample.add_argument(
        "--inpaint_image",
        type=Path,
        help="upsample-inpaint models only: the known high-resolution image (resized to the output size)",
    )
    upsample.add_argument("--mask", type=Path, help="upsample-inpaint models only: the mask, " + MASK_CONVENTION)
    _add_sampling_arguments(
        upsample,
        "GlideUpsamplePipeline",
        "glide-upsample.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
        FAST_UPSAMPLER_STEPS,
        UPSAMPLER_CONFIGURATION + "; --sampler ddim samples as OpenAI's notebook",
        f"{DPM_SOLVER}; with --inpaint_image or --mask, {INPAINT_SAMPLER}",
    )
    _add_upsample_temp(upsample)
    _add_overwrite_input(upsample, "--image, --inpaint_image, --mask")
    _add_runtime_arguments(upsample)

    # serve ------------------------------------------------------------------------------------------------
    serve = sub["serve"] = subparsers.add_parser(
        "serve",
        help="the web app (Gradio): generate, edit with a brush, image to image, upscale",
        description=(
            'Serve the GLIDE web app (needs `pip install "diffusers-glide[app]"`). Without model flags it serves '
            "every embedded model (text to image with CLIP guidance, inpainting, both upsamplers). With --model, only "
            "the stages named are served; 'default' names a stage's embedded model. By default it listens on "
            "127.0.0.1 only, with no public share link."
        ),
    )
    serve.add_argument("--model", help="text-to-image (GlidePipeline) folder or Hub repo id")
    serve.add_argument("--inpaint", help="inpainting (GlideInpaintPipeline) folder or Hub repo id: the Edit tab")
    serve.add_argument("--upsampler", help="upsampler folder or Hub repo id: upsampling and the Upscale tab")
    serve.add_argument(
        "--inpaint_upsampler", help="upsample-inpaint folder or Hub repo id: upsampling in the Edit tab"
    )
    serve.add_argument("--clip", help="noised-CLIP folder or Hub repo id: CLIP guidance")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: %(default)s, this machine only; 0.0.0.0 serves the network)",
    )
    serve.add_argument("--port", type=_port, default=7860, help="port, 1..65535 (default: %(default)s)")
    serve.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    serve.add_argument(
        "--max_file_size", default="10mb", help="largest upload Gradio accepts, e.g. 5mb (default: %(default)s)"
    )
    _add_device_arguments(serve)

    # convert ----------------------------------------------------------------------------------------------
    sub["convert"] = subparsers.add_parser(
        "convert",
        help="convert an OpenAI GLIDE checkpoint into a pipeline folder",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )

    # train ------------------------------------------------------------------------------------------------
    sub["train"] = subparsers.add_parser(
        "train",
        help="train or fine-tune a GLIDE model (any of the four variants) with accelerate",
        description="Train or fine-tune a GLIDE model (any of the four variants) with accelerate. For multi-GPU "
        "jobs: `accelerate launch -m diffusers_glide.training ...` (same flags).",
    )

    # train-clip -------------------------------------------------------------------------------------------
    sub["train-clip"] = subparsers.add_parser(
        "train-clip",
        help="train a noised CLIP for CLIP guidance, contrastively on noised images",
        description="Train GLIDE's noised CLIP (the classifier of CLIP guidance) from scratch: a contrastive loss "
        "between captions and images noised to random diffusion timesteps. The folder it writes loads with "
        "`GlidePipeline.load_clip_guidance` and `generate --clip`.",
    )
    for command in flags_of:
        _IMPORTED_FLAGS[command](sub[command])
    return parser, sub


def _add_convert_flags(parser) -> None:
    from .conversion import cli as conversion_cli

    parser.description = conversion_cli.__doc__
    conversion_cli.add_convert_arguments(parser)


def _add_train_flags(parser) -> None:
    from .training.arguments import add_training_arguments

    add_training_arguments(parser)


def _add_train_clip_flags(parser) -> None:
    from .training.clip_trainer import add_clip_training_arguments

    add_clip_training_arguments(parser)


# The commands whose flags the converter and the trainers define: their modules import torch, so `main` adds these
# flags only to the command that its command line names.
_IMPORTED_FLAGS = {"convert": _add_convert_flags, "train": _add_train_flags, "train-clip": _add_train_clip_flags}


def _command_of(argv: list[str]) -> str | None:
    """The subcommand that `argv` names: its first argument that is not an option (the top-level options, --help
    and --version, take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser() -> argparse.ArgumentParser:
    """The `diffusers-glide` argument parser (with its subcommands and all their flags)."""
    return _build_parsers()[0]


# ---------------------------------------------------------------------------------------------------------------
# Helpers: the pipelines own every input rule; the CLI reads files, loads models and translates errors


def _device(name: str) -> torch.device:
    from .cascade import torch_device

    try:
        return torch_device(name)
    except ValueError as error:
        raise CLIError(f"--device {name}: {error}") from error


def _output_path(path: Path, index: int, count: int, tag: str = "") -> Path:
    """`path` for one image, else `<stem>-<index><suffix>`; `tag` (e.g. "-low") goes before the suffix."""
    number = f"-{index}" if count > 1 else ""
    return path.with_name(f"{path.stem}{number}{tag}{path.suffix}")


def _output_paths(path: Path, count: int, tag: str = "") -> list[Path]:
    return [_output_path(path, i, count, tag) for i in range(count)]


def _check_outputs(path: Path, count: int, tags: tuple[str, ...] = ("",)) -> None:
    """Fail before sampling when the outputs cannot be written. They share a folder and a suffix: the first and
    the last name of each kind stand for all (a huge --num_images builds no list of paths)."""
    from .output_folders import check_output_image_paths

    check_output_image_paths(_output_path(path, i, count, tag) for tag in tags for i in {0, count - 1})


def _numbered_outputs(path: Path, count: int) -> list[Path]:
    """The outputs `_output_paths(path, count)` that may exist: the folder is listed rather than each name tried (a
    huge --num_images builds no list of names). Names are matched regardless of case, for file systems that ignore
    it; the paths returned are the ones the command writes."""
    if count == 1:
        return [path]
    pattern = re.compile(re.escape(path.stem) + "-(0|[1-9][0-9]*)" + re.escape(path.suffix), re.IGNORECASE)
    try:
        names = os.listdir(path.parent)
    except OSError:  # no folder yet: no output exists
        return []
    indices = {int(match[1]) for match in map(pattern.fullmatch, names) if match}
    return [_output_path(path, index, count) for index in sorted(indices) if index < count]


def _check_inputs_kept(args, outputs: list[Path], inputs: dict[str, Path | None]) -> None:
    """Refuse, before anything loads, a run whose outputs would replace one of its inputs, unless --overwrite_input."""
    from .output_folders import check_inputs_kept

    if not args.overwrite_input:
        check_inputs_kept(outputs, inputs, allow=OVERWRITE_INPUT)


def _save(images, paths: list[Path]) -> None:
    from .output_folders import save_image_atomically

    for image, path in zip(images, paths, strict=True):
        save_image_atomically(image, path)
        print(path)


def _read_image(path: Path, what: str) -> PIL.Image.Image:
    """The image file through the package's image gate (`image_files.read_image`: PNG, JPEG, WebP, BMP, GIF or
    TIFF by its bytes, its pixel count checked before decoding, upright as its EXIF orientation says), in any mode
    and bit depth: the pipelines convert it."""
    from .image_files import ImageFileError, read_image

    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise CLIError(f"{what} {path} is not a file.")
    try:
        return read_image(path, f"{what} {path}")
    except ImageFileError as error:
        raise CLIError(str(error)) from None


def _dtype(args) -> torch.dtype:
    import torch

    return getattr(torch, args.dtype)


def _load(pipeline_class, model: str | None, kind: str, args, device: torch.device, sampler: str | None = None):
    """`pipeline_class` from --model `model` (the embedded model of `kind` by default) in --dtype on `device`,
    sampling with `sampler` (None: its configured one)."""
    from .cascade import load_pipeline

    if args.no_progress:  # also diffusers' "Loading pipeline components" bar
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    return load_pipeline(
        pipeline_class, model, kind, device=device, dtype=_dtype(args), sampler=sampler, progress=not args.no_progress
    )


# ---------------------------------------------------------------------------------------------------------------
# Commands


def run_generate(args) -> int:
    from .batch_generation import run_batch_generation, uses_prompt_file

    if uses_prompt_file(args):
        return run_batch_generation(args, load_cascade)
    device = _device(args.device)
    _check_outputs(args.output, args.num_images, ("", "-low") if args.upsampler else ("",))
    cascade = load_cascade(args, device)
    generator = make_generator(args.seed, device)
    images = cascade.sample_base(args.prompt, generator, num_images_per_prompt=args.num_images)
    if cascade.upsampler is None:
        _save(images, _output_paths(args.output, len(images)))
        return 0
    _save(images, _output_paths(args.output, len(images), tag="-low"))
    upsampled = cascade.upsample(args.prompt, images, generator)
    _save(upsampled, _output_paths(args.output, len(upsampled)))
    return 0


def load_cascade(args, device: torch.device) -> Cascade:
    """`generate`'s cascade on `device`: --model (with the noised CLIP of --clip) and --upsampler, with their
    sampling flags."""
    from .cascade import Cascade

    if args.no_progress:  # also diffusers' "Loading pipeline components" bar
        from diffusers.utils import logging as diffusers_logging

        diffusers_logging.disable_progress_bar()
    return Cascade.from_pretrained(
        args.model,
        args.upsampler,
        args.clip,
        device=device,
        dtype=_dtype(args),
        progress=not args.no_progress,
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


def run_img2img(args) -> int:
    from .pipelines import GlideImg2ImgPipeline

    device = _device(args.device)
    _check_outputs(args.output, args.num_images)
    _check_inputs_kept(args, _numbered_outputs(args.output, args.num_images), {"--image": args.image})
    image = _read_image(args.image, "image")
    pipe = _load(GlideImg2ImgPipeline, args.model, "base", args, device, args.sampler)
    load_clip_guidance(pipe, args.clip, _dtype(args))
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
    _save(images, _output_paths(args.output, len(images)))
    return 0


def _parse_edits(values: list[list[str]], default_strength: float) -> list[InpaintEdit]:
    """`--edit MASK PROMPT [STRENGTH]` values -> edits with their masks read (every file checked before sampling)."""
    from .pipelines import InpaintEdit

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
                strength = _finite_float(value[2])
            except argparse.ArgumentTypeError as error:
                raise CLIError(f"--edit {number}: STRENGTH {error}") from None
        mask = _read_image(Path(value[0]), f"mask of edit {number}")
        edits.append(InpaintEdit(prompt=value[1], mask_image=mask, strength=strength))
    return edits


def run_edit(args) -> int:
    from .output_folders import check_output_image_paths
    from .pipelines import GlideInpaintPipeline, apply_edits

    device = _device(args.device)
    steps = [
        args.output.with_name(f"{args.output.stem}-step{k}{args.output.suffix}") for k in range(1, len(args.edits))
    ]
    outputs = [*(steps if args.save_steps else []), args.output]
    masks = {f"--edit {number} mask": Path(value[0]) for number, value in enumerate(args.edits, start=1)}
    _check_inputs_kept(args, outputs, {"--image": args.image, **masks})
    edits = _parse_edits(args.edits, args.strength)
    check_output_image_paths(outputs)
    image = _read_image(args.image, "image")
    pipe = _load(GlideInpaintPipeline, args.model, "base-inpaint", args, device, args.sampler)
    results = apply_edits(
        pipe,
        image,
        edits,
        generator=make_generator(args.seed, device),
        num_inference_steps=sampling_steps(args.sampler, args.steps, FAST_STEPS),
        guidance_scale=args.guidance_scale,
    )
    _save(results, outputs)
    return 0


def run_inpaint(args) -> int:
    from .pipelines import GlideInpaintPipeline

    device = _device(args.device)
    _check_outputs(args.output, args.num_images)
    inputs = {"--image": args.image, "--mask": args.mask}
    _check_inputs_kept(args, _numbered_outputs(args.output, args.num_images), inputs)
    image = _read_image(args.image, "image")
    mask = _read_image(args.mask, "mask")
    pipe = _load(GlideInpaintPipeline, args.model, "base-inpaint", args, device, args.sampler)
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
    _save(images, _output_paths(args.output, len(images)))
    return 0


def run_upsample(args) -> int:
    from .pipelines import GlideUpsamplePipeline

    device = _device(args.device)
    _check_outputs(args.output, args.num_images)
    inputs = {"--image": args.image, "--inpaint_image": args.inpaint_image, "--mask": args.mask}
    _check_inputs_kept(args, _numbered_outputs(args.output, args.num_images), inputs)
    inpainting = args.inpaint_image is not None or args.mask is not None
    # the fast path for upsampling; GLIDE's own sampler for inpainting (see INPAINT_SAMPLER)
    sampler = args.sampler or (None if inpainting else DPM_SOLVER)
    image = _read_image(args.image, "image")
    inpaint_image = _read_image(args.inpaint_image, "inpaint image") if args.inpaint_image is not None else None
    mask = _read_image(args.mask, "mask") if args.mask is not None else None
    kind = "upsample-inpaint" if inpainting else "upsample"
    pipe = _load(GlideUpsamplePipeline, args.model, kind, args, device, sampler)
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
    _save(images, _output_paths(args.output, len(images)))
    return 0


def run_serve(args) -> int:
    device = _device(args.device)
    try:
        from .app import build_app, launch_options, load_app_models
    except ImportError as error:
        raise CLIError(str(error)) from error
    options = launch_options(host=args.host, port=args.port, share=args.share, max_file_size=args.max_file_size)
    models = load_app_models(
        model=args.model,
        inpaint=args.inpaint,
        upsampler=args.upsampler,
        inpaint_upsampler=args.inpaint_upsampler,
        clip=args.clip,
        device=device,
        dtype=_dtype(args),
    )
    build_app(models).launch(**options)
    return 0


def run_train(args, argv: list[str]) -> int:
    from .training import train

    rest = argv[argv.index("train") + 1 :]
    train_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "subcommand"})
    path = train(train_args, command=shlex.join([PROG, "train", *rest]))
    print(f"Saved the trained pipeline to {path}")
    return 0


def run_train_clip(args, argv: list[str]) -> int:
    from .training.clip_trainer import train_clip

    rest = argv[argv.index("train-clip") + 1 :]
    train_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "subcommand"})
    path = train_clip(train_args, command=shlex.join([PROG, "train-clip", *rest]))
    print(f"Saved the noised CLIP to {path}")
    return 0


def _check_imported_flags(parser, args) -> None:
    """The converter's and the trainers' own checks of their flags (usage errors exit through `parser.error`)."""
    if args.subcommand == "convert":
        from .conversion.cli import check_convert_arguments

        check_convert_arguments(parser, args)
    elif args.subcommand == "train":
        from .training.arguments import check_training_arguments

        check_training_arguments(parser, args)
    else:
        from .training.clip_trainer import check_clip_training_arguments

        check_clip_training_arguments(parser, args)


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
    command = _command_of(argv)
    parser, sub = _build_parsers(flags_of=[command] if command in _IMPORTED_FLAGS else [])
    try:
        args = parser.parse_args(argv)
        if args.subcommand is None:
            parser.print_help(sys.stderr)
            return 2
        if args.subcommand in _IMPORTED_FLAGS:
            _check_imported_flags(sub[args.subcommand], args)
    except SystemExit as exit_:  # argparse: --help, --version, usage errors (2)
        return _exit_code(exit_)

    from .pipelines.memory import BatchTooLargeError

    if getattr(args, "threads", None) is not None:
        _set_threads(args.threads)
    try:
        if args.subcommand == "generate":
            return run_generate(args)
        if args.subcommand == "inpaint":
            return run_inpaint(args)
        if args.subcommand == "img2img":
            return run_img2img(args)
        if args.subcommand == "edit":
            return run_edit(args)
        if args.subcommand == "upsample":
            return run_upsample(args)
        if args.subcommand == "serve":
            return run_serve(args)
        if args.subcommand == "convert":
            from .conversion.cli import run_conversion

            return run_conversion(args)
        if args.subcommand == "train-clip":
            return run_train_clip(args, argv)
        return run_train(args, argv)
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
