"""The `diffusers-glide` command: generate, inpaint and upsample images, convert OpenAI checkpoints, train.

    diffusers-glide generate "a red circle on a blue background" -o circle.png --seed 0
    diffusers-glide generate "an oil painting of a corgi" --model glide-base --upsampler glide-upsample
    diffusers-glide inpaint "a corgi in a field" --image grass.png --mask mask.png --model glide-base-inpaint
    diffusers-glide upsample "a corgi" --image corgi_64.png --model glide-upsample
    diffusers-glide convert --checkpoint_path base.pt --model_type base --vocab_dir openai --dump_path glide-base
    diffusers-glide train --output_dir runs/shapes --shapes --max_train_steps 1000

Every `--model` is a pipeline folder (converted, trained or saved with `save_pretrained`) or a Hub repo id.
Without `--model`, `generate` uses the tiny text-to-image model embedded in the package (32x32 shapes).
User errors (missing files, bad masks, unknown model folders, bad values) print `error: ...` and exit with 2.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import torch
from diffusers.utils import logging as diffusers_logging
from huggingface_hub.utils import HFValidationError, validate_repo_id

from . import __version__
from .conversion import cli as conversion_cli
from .conversion.cli import add_convert_arguments, check_convert_arguments, run_conversion
from .embedded import embedded_model_path
from .pipelines import GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline
from .pipelines.pipeline_glide import CLIP_COMPONENTS
from .training.arguments import add_training_arguments, check_training_arguments

PROG = "diffusers-glide"
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Which command runs a pipeline class (for "wrong kind of model" errors).
COMMAND_OF_CLASS = {
    "GlidePipeline": "`diffusers-glide generate --model`",
    "GlideInpaintPipeline": "`diffusers-glide inpaint --model`",
    "GlideUpsamplePipeline": "`diffusers-glide upsample --model` or `diffusers-glide generate --upsampler`",
}
KIND_OF_CLASS = {
    "GlidePipeline": "a text-to-image",
    "GlideInpaintPipeline": "an inpainting",
    "GlideUpsamplePipeline": "an upsampling",
}
MASK_CONVENTION = "white = repaint, black = keep (the diffusers convention; GLIDE's own masks are the opposite)"


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


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not number >= 0:  # also rejects nan
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
        type=float,
        default=_default(pipeline_class, "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
    )


def _add_runtime_arguments(parser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=list(DTYPES), help="weights dtype (default: float32)")
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
        help="GlideUpsamplePipeline folder or Hub repo id: upsample every generated image with the same prompt. "
        "The upsampled images are written to the --output path(s); the base images next to them as "
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
        type=float,
        default=_default(GlideUpsamplePipeline, "guidance_scale"),
        help="upsampler guidance scale (default: %(default)s, no guidance, as GLIDE)",
    )
    _add_upsample_temp(upsampling)
    clip = generate.add_argument_group("CLIP guidance")
    clip.add_argument(
        "--clip",
        help="noised-CLIP folder or Hub repo id (converted with `convert --model_type clip`); not needed when the "
        "--model folder already holds the CLIP components",
    )
    clip.add_argument(
        "--clip_guidance_scale",
        type=_non_negative_float,
        help="CLIP guidance scale; 0 disables it (default: 3.0, the notebook's, with --clip; otherwise 0). "
        "Combines with --guidance_scale; the notebook uses --guidance_scale 1 with CLIP guidance",
    )
    _add_runtime_arguments(generate)

    # inpaint ----------------------------------------------------------------------------------------------
    inpaint = sub["inpaint"] = subparsers.add_parser(
        "inpaint",
        help="repaint the masked region of an image from text (needs an inpainting --model)",
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
        help="GlideInpaintPipeline folder or Hub repo id, e.g. a converted base-inpaint checkpoint (required: the "
        "embedded default model is text-to-image only)",
    )
    _add_sampling_arguments(
        inpaint,
        GlideInpaintPipeline,
        "glide-inpaint.png",
        "output image (default: %(default)s); with --num_images N > 1: <stem>-0<suffix> ... <stem>-<N-1><suffix>",
    )
    _add_runtime_arguments(inpaint)

    # upsample ---------------------------------------------------------------------------------------------
    upsample = sub["upsample"] = subparsers.add_parser(
        "upsample",
        help="text-conditional super-resolution of an image (needs an upsampling --model)",
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
        help="GlideUpsamplePipeline folder or Hub repo id, e.g. a converted upsample checkpoint (required: the "
        "embedded default model is text-to-image only)",
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
    return parser, sub


def build_parser() -> argparse.ArgumentParser:
    """The `diffusers-glide` argument parser (with its subcommands)."""
    return _build_parsers()[0]


# ---------------------------------------------------------------------------------------------------------------
# Helpers


def _one_line(error: BaseException) -> str:
    """The message of `error` on one line (or its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as error:
        raise CLIError(f"--device {name!r} is not a torch device (cpu, cuda, cuda:0, mps, ...): {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available on this machine (use --device cpu).")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CLIError(f"--device {name}: MPS is not available on this machine (use --device cpu).")
    return device


def _check_output(path: Path) -> None:
    """Fail before sampling when the output format cannot be told from the suffix."""
    if path.suffix.lower() not in PIL.Image.registered_extensions():
        raise CLIError(
            f"cannot tell the image format of the output {str(path)!r} from its suffix: use e.g. .png or .jpg."
        )
    if path.exists() and path.is_dir():
        raise CLIError(f"the output {str(path)!r} is a folder: give a file name such as {path / 'glide.png'}.")


def _output_paths(path: Path, count: int, tag: str = "") -> list[Path]:
    """`path` for one image, else `<stem>-<i><suffix>`; `tag` (e.g. "-low") goes before the suffix."""
    if count == 1:
        return [path.with_name(f"{path.stem}{tag}{path.suffix}")]
    return [path.with_name(f"{path.stem}-{i}{tag}{path.suffix}") for i in range(count)]


def _save(images, paths: list[Path]) -> None:
    for image, path in zip(images, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        print(path)


def _read_image(path: Path, what: str) -> PIL.Image.Image:
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise CLIError(f"{what} {path} is not a file.")
    try:
        with PIL.Image.open(path) as image:
            image.load()
            return image.copy()
    except (PIL.UnidentifiedImageError, OSError, SyntaxError) as error:
        raise CLIError(f"cannot read {what} {path} as an image: {_one_line(error)}") from error


def _read_mask(path: Path) -> PIL.Image.Image:
    mask = _read_image(path, "mask").convert("L")
    if np.asarray(mask).max() < 128:
        raise CLIError(
            f"the mask {path} is all black, so there is nothing to repaint: {MASK_CONVENTION}. Paint the region to "
            "repaint white."
        )
    return mask


def _check_mask_survives_resizing(pipe, mask: PIL.Image.Image, path: Path) -> None:
    repaint, _ = pipe.prepare_repaint_mask(mask)
    if repaint.sum() == 0:
        size = pipe.unet.config.sample_size
        raise CLIError(
            f"the white (repaint) region of the mask {path} vanishes when the mask is resized to the model's "
            f"{size}x{size}: make it larger."
        )


def _hub_id(name: str, not_found: str) -> str:
    """`name`, which is not a local path, if it is a valid Hub repo id (from_pretrained downloads it or finds it
    in the cache); else FileNotFoundError(`not_found` + " or a Hub repo id ...")."""
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise FileNotFoundError(f"{not_found} or a Hub repo id such as owner/name)") from None
    return name


def _model_source(model: str | None, pipeline_class, command: str) -> str:
    """The folder or Hub id to load `pipeline_class` from, with clear errors for the wrong kind of model."""
    expected = pipeline_class.__name__
    if model is None:
        if pipeline_class is GlidePipeline:
            return embedded_model_path()
        raise CLIError(
            f"`{command}` needs --model: the embedded default model is a text-to-image model (GlidePipeline) and "
            f"cannot {command}. Pass {KIND_OF_CLASS[expected]} pipeline folder or Hub id ({expected}), e.g. a "
            f"converted {'base-inpaint' if command == 'inpaint' else 'upsample'} checkpoint."
        )
    path = Path(model).expanduser()
    if not path.exists():
        return _hub_id(
            model, f"model folder not found: {model} (expected {KIND_OF_CLASS[expected]} pipeline folder ({expected})"
        )
    index_file = path / "model_index.json"
    if not path.is_dir() or not index_file.is_file():
        raise CLIError(
            f"{model} is not a diffusers pipeline folder (no model_index.json): expected {KIND_OF_CLASS[expected]} "
            f"pipeline ({expected}), e.g. a folder written by `diffusers-glide convert` or `save_pretrained`."
        )
    try:
        class_name = json.loads(index_file.read_text(encoding="utf-8")).get("_class_name")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise CLIError(f"cannot read {index_file}: not a valid model_index.json ({_one_line(error)}).") from error
    if class_name != expected:
        hint = f"; it is run by {COMMAND_OF_CLASS[class_name]}" if class_name in COMMAND_OF_CLASS else ""
        raise CLIError(
            f"{model} holds a {class_name or 'pipeline without _class_name'}, but `{command}` needs "
            f"{KIND_OF_CLASS[expected]} pipeline ({expected}){hint}."
        )
    return str(path)


def _clip_source(clip: str) -> str:
    """The noised-CLIP folder or Hub id, with a clear error for a folder of something else."""
    path = Path(clip).expanduser()
    if not path.exists():
        return _hub_id(
            clip, f"CLIP folder not found: {clip} (expected a folder converted with `convert --model_type clip`"
        )
    missing = [name for name in CLIP_COMPONENTS if not (path / name).is_dir()]
    if missing:
        raise CLIError(
            f"{clip} is not a noised-CLIP folder: it lacks {', '.join(missing)} (expected the output of "
            "`diffusers-glide convert --model_type clip`)."
        )
    return str(path)


def _folder_has_clip(source: str) -> bool:
    """Whether a pipeline folder lists the CLIP components (True for a Hub id: its loading will tell)."""
    index_file = Path(source) / "model_index.json"
    if not index_file.is_file():
        return True
    model_index = json.loads(index_file.read_text(encoding="utf-8"))
    return all(isinstance(model_index.get(name), list) and None not in model_index[name] for name in CLIP_COMPONENTS)


def _load(pipeline_class, source: str, args, device: torch.device):
    if args.no_progress:  # also diffusers' "Loading pipeline components" bar
        diffusers_logging.disable_progress_bar()
    pipe = pipeline_class.from_pretrained(source, dtype=DTYPES[args.dtype])
    pipe = pipe.to(device)
    if args.no_progress:
        pipe.set_progress_bar_config(disable=True)
    return pipe


def _generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    return None if seed is None else torch.Generator(device).manual_seed(seed)


# ---------------------------------------------------------------------------------------------------------------
# Commands


def run_generate(args) -> int:
    device = _device(args.device)
    _check_output(args.output)
    source = _model_source(args.model, GlidePipeline, "generate")
    upsampler_source = None
    if args.upsampler is not None:
        upsampler_source = _model_source(args.upsampler, GlideUpsamplePipeline, "generate --upsampler")
    clip_source = _clip_source(args.clip) if args.clip is not None else None
    clip_guidance_scale = args.clip_guidance_scale
    if clip_guidance_scale is None:
        clip_guidance_scale = 3.0 if clip_source is not None else 0.0
    if clip_guidance_scale > 0 and clip_source is None and not _folder_has_clip(source):
        raise CLIError(
            f"--clip_guidance_scale {clip_guidance_scale} needs the noised CLIP: pass --clip (a folder converted with "
            "`convert --model_type clip`, or a Hub id), or a --model folder that holds the CLIP components."
        )
    pipe = _load(GlidePipeline, source, args, device)
    if clip_source is not None:
        pipe.load_clip_guidance(clip_source, dtype=DTYPES[args.dtype])
    upsampler = None
    if upsampler_source is not None:
        upsampler = _load(GlideUpsamplePipeline, upsampler_source, args, device)
        if upsampler.unet.config.inpainting:
            raise CLIError(
                f"--upsampler {args.upsampler} is an inpainting upsampler (upsample-inpaint): use a plain upsampler "
                "here, or `diffusers-glide upsample` with --inpaint_image and --mask."
            )

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


def run_inpaint(args) -> int:
    device = _device(args.device)
    _check_output(args.output)
    source = _model_source(args.model, GlideInpaintPipeline, "inpaint")
    image = _read_image(args.image, "image").convert("RGB")
    mask = _read_mask(args.mask)
    pipe = _load(GlideInpaintPipeline, source, args, device)
    _check_mask_survives_resizing(pipe, mask, args.mask)
    images = pipe(
        args.prompt,
        image=image,
        mask_image=mask,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance_scale,
        num_images_per_prompt=args.num_images,
        generator=_generator(args.seed, device),
    ).images
    _save(images, _output_paths(args.output, len(images)))
    return 0


def run_upsample(args) -> int:
    device = _device(args.device)
    _check_output(args.output)
    source = _model_source(args.model, GlideUpsamplePipeline, "upsample")
    image = _read_image(args.image, "image").convert("RGB")
    inpaint_image = mask = None
    if args.inpaint_image is not None:
        inpaint_image = _read_image(args.inpaint_image, "inpaint image").convert("RGB")
    if args.mask is not None:
        mask = _read_mask(args.mask)
    pipe = _load(GlideUpsamplePipeline, source, args, device)
    if pipe.unet.config.inpainting and (inpaint_image is None or mask is None):
        raise CLIError(
            f"{args.model} is an inpainting upsampler (upsample-inpaint): it needs --inpaint_image (the known "
            f"high-resolution image) and --mask, where {MASK_CONVENTION}."
        )
    if not pipe.unet.config.inpainting and (inpaint_image is not None or mask is not None):
        raise CLIError(
            f"--inpaint_image / --mask need an inpainting upsampler (upsample-inpaint); {args.model} is a plain one."
        )
    if mask is not None:
        _check_mask_survives_resizing(pipe, mask, args.mask)
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


def run_train(args, argv: list[str]) -> int:
    from .training import train

    rest = argv[argv.index("train") + 1 :]
    train_args = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "subcommand"})
    path = train(train_args, command=shlex.join([PROG, "train", *rest]))
    print(f"Saved the trained pipeline to {path}")
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
    except SystemExit as exit_:  # argparse: --help, --version, usage errors (2)
        return _exit_code(exit_)

    try:
        if args.subcommand == "generate":
            return run_generate(args)
        if args.subcommand == "inpaint":
            return run_inpaint(args)
        if args.subcommand == "upsample":
            return run_upsample(args)
        if args.subcommand == "convert":
            return run_conversion(args)
        return run_train(args, argv)
    except (FileNotFoundError, ValueError, OSError) as error:  # OSError is also EnvironmentError
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
