"""The `diffusers-glide` command: generate, inpaint, edit and upsample images, convert OpenAI checkpoints, train.

    diffusers-glide generate "a red circle on a blue background" -o circle.png --seed 0
    diffusers-glide generate "an oil painting of a corgi" --model glide-base --upsampler glide-upsample
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
User errors (missing files, bad masks, unknown model folders, bad values) print `error: ...` and exit with 2.
"""

from __future__ import annotations

import argparse
import inspect
import math
import shlex
import sys
from pathlib import Path

import PIL.Image
import torch
from diffusers.utils import logging as diffusers_logging

from . import __version__
from .conversion import cli as conversion_cli
from .conversion.cli import add_convert_arguments, check_convert_arguments, run_conversion
from .conversion.convert import DTYPES
from .embedded import embedded_model_path
from .output_folders import check_output_image_paths, save_image_atomically
from .pipelines import (
    GlideImg2ImgPipeline,
    GlideInpaintPipeline,
    GlidePipeline,
    GlideUpsamplePipeline,
    InpaintEdit,
    apply_edits,
)
from .pipelines.memory import BatchTooLargeError
from .training.arguments import add_training_arguments, check_training_arguments
from .training.clip_trainer import add_clip_training_arguments, check_clip_training_arguments

PROG = "diffusers-glide"
DEFAULT = "default"  # the value of --upsampler / --clip that names the embedded model
MASK_CONVENTION = "white = repaint, black = keep (the diffusers convention; GLIDE's own masks are the opposite)"
# torch device types that can sample (`meta` tensors, for one, hold no data)
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


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


def _default(pipeline_class, name: str):
    """The default of a pipeline `__call__` argument, so the help shows the pipeline's own defaults."""
    return inspect.signature(pipeline_class.__call__).parameters[name].default


# ---------------------------------------------------------------------------------------------------------------
# Parser


def _add_sampling_arguments(parser, pipeline_class, output_default: str, output_help: str) -> None:
    parser.add_argument("-o", "--output", type=Path, default=Path(output_default), help=output_help)
    parser.add_argument("--num_images", type=_positive_int, default=1, help="images to sample (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="seed of the sampling noise: the same seed gives the same images")
    parser.add_argument(
        "--steps",
        type=_positive_int,
        help="denoising steps (default: the model's scheduler configuration: 100 for converted base and "
        "base-inpaint models, 27 for converted upsamplers)",
    )
    parser.add_argument(
        "--guidance_scale",
        type=_finite_float,
        default=_default(pipeline_class, "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
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


def _add_device_arguments(parser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="weights dtype (default: float32)")


def _add_runtime_arguments(parser) -> None:
    _add_device_arguments(parser)
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bars of the denoising loops")


def _add_upsample_temp(parser, flag: str = "--upsample_temp") -> None:
    parser.add_argument(
        flag,
        dest="upsample_temp",
        type=_non_negative_float,
        default=_default(GlideUpsamplePipeline, "upsample_temp"),
        help="GLIDE's upsample temperature: the initial noise is N(0, 1) times this (default: %(default)s)",
    )


def _build_parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
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
    generate.add_argument("prompt", help="the text prompt")
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
        GlidePipeline,
        "glide.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>. "
        "The format follows the suffix (.png, .jpg, ...); parent folders are created",
    )
    upsampling = generate.add_argument_group("upsampling (with --upsampler)")
    upsampling.add_argument(
        "--upsample_steps", type=_positive_int, help="upsampler denoising steps (default: its scheduler's)"
    )
    upsampling.add_argument(
        "--upsample_guidance_scale",
        type=_finite_float,
        default=_default(GlideUpsamplePipeline, "guidance_scale"),
        help="upsampler guidance scale (default: %(default)s, no guidance, as GLIDE)",
    )
    _add_upsample_temp(upsampling)
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
        GlideInpaintPipeline,
        "glide-inpaint.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
    )
    _add_strength(
        inpaint,
        GlideInpaintPipeline,
        "sketch-guided inpainting: below 1 the masked region starts from --image (paint a rough colour sketch "
        "into it) instead of noise",
    )
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
        GlideImg2ImgPipeline,
        "glide-img2img.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
    )
    _add_strength(img2img, GlideImg2ImgPipeline, "how far the image is noised")
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
    edit.add_argument("--seed", type=int, help="seed of the sampling noise of all edits")
    edit.add_argument(
        "--steps", type=_positive_int, help="denoising steps of each edit (default: the scheduler configuration)"
    )
    edit.add_argument(
        "--guidance_scale",
        type=_finite_float,
        default=_default(GlideInpaintPipeline, "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
    )
    _add_strength(edit, GlideInpaintPipeline, "the strength of the edits that give none")
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
        GlideUpsamplePipeline,
        "glide-upsample.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
    )
    _add_upsample_temp(upsample)
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
    serve.add_argument("--port", type=_positive_int, default=7860, help="port (default: %(default)s)")
    serve.add_argument("--share", action="store_true", help="also open a public gradio.live link (off by default)")
    serve.add_argument(
        "--max_file_size", default="10mb", help="largest upload Gradio accepts, e.g. 5mb (default: %(default)s)"
    )
    _add_device_arguments(serve)

    # convert ----------------------------------------------------------------------------------------------
    convert = sub["convert"] = subparsers.add_parser(
        "convert",
        help="convert an OpenAI GLIDE checkpoint into a pipeline folder",
        description=conversion_cli.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_convert_arguments(convert)

    # train ------------------------------------------------------------------------------------------------
    train = sub["train"] = subparsers.add_parser(
        "train",
        help="train or fine-tune a GLIDE model (any of the four variants) with accelerate",
        description="Train or fine-tune a GLIDE model (any of the four variants) with accelerate. For multi-GPU "
        "jobs: `accelerate launch -m diffusers_glide.training ...` (same flags).",
    )
    add_training_arguments(train)

    # train-clip -------------------------------------------------------------------------------------------
    train_clip = sub["train-clip"] = subparsers.add_parser(
        "train-clip",
        help="train a noised CLIP for CLIP guidance, contrastively on noised images",
        description="Train GLIDE's noised CLIP (the classifier of CLIP guidance) from scratch: a contrastive loss "
        "between captions and images noised to random diffusion timesteps. The folder it writes loads with "
        "`GlidePipeline.load_clip_guidance` and `generate --clip`.",
    )
    add_clip_training_arguments(train_clip)
    return parser, sub


def build_parser() -> argparse.ArgumentParser:
    """The `diffusers-glide` argument parser (with its subcommands)."""
    return _build_parsers()[0]


# ---------------------------------------------------------------------------------------------------------------
# Helpers: the pipelines own every input rule; the CLI reads files, loads models and translates errors


def _one_line(error: BaseException) -> str:
    """The message of `error` on one line (or its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise CLIError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:0, mps, ...): {error}") from error
    if device.type not in DEVICE_TYPES:
        raise CLIError(
            f"--device {name}: cannot sample on a {device.type!r} device; use one of {', '.join(DEVICE_TYPES)}."
        )
    backend = getattr(torch, device.type, None) if device.type != "mps" else torch.backends.mps
    if device.type != "cpu" and not (backend is not None and backend.is_available()):
        raise CLIError(f"--device {name}: {device.type.upper()} is not available on this machine (use --device cpu).")
    return device


def _output_path(path: Path, index: int, count: int, tag: str = "") -> Path:
    """`path` for one image, else `<stem>-<index><suffix>`; `tag` (e.g. "-low") goes before the suffix."""
    number = f"-{index}" if count > 1 else ""
    return path.with_name(f"{path.stem}{number}{tag}{path.suffix}")


def _output_paths(path: Path, count: int, tag: str = "") -> list[Path]:
    return [_output_path(path, i, count, tag) for i in range(count)]


def _check_outputs(path: Path, count: int, tags: tuple[str, ...] = ("",)) -> None:
    """Fail before sampling when the outputs cannot be written. They share a folder and a suffix: the first and
    the last name of each kind stand for all (a huge --num_images builds no list of paths)."""
    check_output_image_paths(_output_path(path, i, count, tag) for tag in tags for i in {0, count - 1})


def _save(images, paths: list[Path]) -> None:
    for image, path in zip(images, paths, strict=True):
        save_image_atomically(image, path)
        print(path)


def _read_image(path: Path, what: str) -> PIL.Image.Image:
    """The image file as Pillow opens it (any mode and bit depth: the pipelines convert it)."""
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise CLIError(f"{what} {path} is not a file.")
    try:
        with PIL.Image.open(path) as image:
            image.load()
            return image.copy()
    except (PIL.UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CLIError(f"cannot read {what} {path} as an image: {_one_line(error)}") from error


def _load(pipeline_class, source: str, args, device: torch.device):
    if args.no_progress:  # also diffusers' "Loading pipeline components" bar
        diffusers_logging.disable_progress_bar()
    pipe = pipeline_class.from_pretrained(source, dtype=DTYPES[args.dtype])
    pipe = pipe.to(device)
    if args.no_progress:
        pipe.set_progress_bar_config(disable=True)
    return pipe


def _model_or_embedded(model: str | None, kind: str) -> str:
    """`model`, or the embedded model of `kind` when it is omitted or 'default'."""
    return embedded_model_path(kind) if model in (None, DEFAULT) else model


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device).manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------------
# Commands


def run_generate(args) -> int:
    device = _device(args.device)
    _check_outputs(args.output, args.num_images, ("", "-low") if args.upsampler else ("",))
    clip_guidance_scale = _clip_guidance_scale(args)
    pipe = _load(GlidePipeline, _model_or_embedded(args.model, "base"), args, device)
    if args.clip is not None:
        pipe.load_clip_guidance(_model_or_embedded(args.clip, "clip"), dtype=DTYPES[args.dtype])
    upsampler = None
    if args.upsampler is not None:
        upsampler = _load(GlideUpsamplePipeline, _model_or_embedded(args.upsampler, "upsample"), args, device)
        # before the base model samples: an inpainting upsampler would need --inpaint_image / --mask
        upsampler.check_inputs(image=[], inpaint_image=None, mask_image=None, upsample_temp=args.upsample_temp)

    generator = _generator(args.seed, device)
    images = pipe(
        args.prompt,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        num_images_per_prompt=args.num_images,
        generator=generator,
        clip_guidance_scale=clip_guidance_scale,
    ).images
    if upsampler is None:
        _save(images, _output_paths(args.output, len(images)))
        return 0
    _save(images, _output_paths(args.output, len(images), tag="-low"))
    upsampled = upsampler(
        args.prompt,
        image=images,
        num_inference_steps=args.upsample_steps,
        guidance_scale=args.upsample_guidance_scale,
        upsample_temp=args.upsample_temp,
        generator=generator,
    ).images
    _save(upsampled, _output_paths(args.output, len(upsampled)))
    return 0


def _clip_guidance_scale(args) -> float:
    if args.clip_guidance_scale is not None:
        return args.clip_guidance_scale
    return 3.0 if args.clip is not None else 0.0


def run_img2img(args) -> int:
    device = _device(args.device)
    _check_outputs(args.output, args.num_images)
    image = _read_image(args.image, "image")
    pipe = _load(GlideImg2ImgPipeline, _model_or_embedded(args.model, "base"), args, device)
    if args.clip is not None:
        pipe.load_clip_guidance(_model_or_embedded(args.clip, "clip"), dtype=DTYPES[args.dtype])
    images = pipe(
        args.prompt,
        image=image,
        strength=args.strength,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        num_images_per_prompt=args.num_images,
        generator=_generator(args.seed, device),
        clip_guidance_scale=_clip_guidance_scale(args),
    ).images
    _save(images, _output_paths(args.output, len(images)))
    return 0


def _parse_edits(values: list[list[str]], default_strength: float) -> list[InpaintEdit]:
    """`--edit MASK PROMPT [STRENGTH]` values -> edits with their masks read (every file checked before sampling)."""
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
    device = _device(args.device)
    edits = _parse_edits(args.edits, args.strength)
    steps = [args.output.with_name(f"{args.output.stem}-step{k}{args.output.suffix}") for k in range(1, len(edits))]
    check_output_image_paths([*(steps if args.save_steps else []), args.output])
    image = _read_image(args.image, "image")
    pipe = _load(GlideInpaintPipeline, _model_or_embedded(args.model, "base-inpaint"), args, device)
    results = apply_edits(
        pipe,
        image,
        edits,
        generator=_generator(args.seed, device),
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
    )
    _save(results, [*steps, args.output] if args.save_steps else [args.output])
    return 0


def run_inpaint(args) -> int:
    device = _device(args.device)
    _check_outputs(args.output, args.num_images)
    source = _model_or_embedded(args.model, "base-inpaint")
    image = _read_image(args.image, "image")
    mask = _read_image(args.mask, "mask")
    pipe = _load(GlideInpaintPipeline, source, args, device)
    images = pipe(
        args.prompt,
        image=image,
        mask_image=mask,
        strength=args.strength,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        num_images_per_prompt=args.num_images,
        generator=_generator(args.seed, device),
    ).images
    _save(images, _output_paths(args.output, len(images)))
    return 0


def run_upsample(args) -> int:
    device = _device(args.device)
    _check_outputs(args.output, args.num_images)
    inpainting = args.inpaint_image is not None or args.mask is not None
    source = _model_or_embedded(args.model, "upsample-inpaint" if inpainting else "upsample")
    image = _read_image(args.image, "image")
    inpaint_image = _read_image(args.inpaint_image, "inpaint image") if args.inpaint_image is not None else None
    mask = _read_image(args.mask, "mask") if args.mask is not None else None
    pipe = _load(GlideUpsamplePipeline, source, args, device)
    images = pipe(
        args.prompt,
        image=image,
        inpaint_image=inpaint_image,
        mask_image=mask,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        upsample_temp=args.upsample_temp,
        num_images_per_prompt=args.num_images,
        generator=_generator(args.seed, device),
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
        dtype=DTYPES[args.dtype],
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
    parser, sub = _build_parsers()
    try:
        args = parser.parse_args(argv)
        if args.subcommand is None:
            parser.print_help(sys.stderr)
            return 2
        if args.subcommand == "convert":
            check_convert_arguments(sub["convert"], args)
        elif args.subcommand == "train":
            check_training_arguments(sub["train"], args)
        elif args.subcommand == "train-clip":
            check_clip_training_arguments(sub["train-clip"], args)
    except SystemExit as exit_:  # argparse: --help, --version, usage errors (2)
        return _exit_code(exit_)

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
            return run_conversion(args)
        if args.subcommand == "train-clip":
            return run_train_clip(args, argv)
        return run_train(args, argv)
    except BatchTooLargeError as error:
        print(
            f"error: --num_images {getattr(args, 'num_images', 1)} is too many for one run: at most {error.max_images} fit in memory "
            f"({_one_line(error)}). Run the command several times with different --seed values.",
            file=sys.stderr,
        )
        return 2
    except (ValueError, OSError, FloatingPointError) as error:  # OSError covers FileNotFoundError
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
