"""The flags that several commands share: argument types, the pipelines' defaults and the groups of flags.

Light on purpose (no torch, no diffusers): every command's parser is built from here for `--help`.
"""

from __future__ import annotations

import argparse
import math
import shlex
from pathlib import Path

from ..batch_generation import seed_number
from ..cascade import DEFAULT_SAMPLING
from ..samplers import SAMPLERS

PROG = "diffusers-glide"
MASK_CONVENTION = "white = repaint, black = keep (the diffusers convention; GLIDE's own masks are the opposite)"
OVERWRITE_INPUT = "--overwrite_input"  # the flag that lets an output replace an input file
# the entries the parser adds to every command's namespace besides its flags: the command's name, the function
# that runs it (`set_defaults(run=...)`) and, for the converter and the trainers, their own checks of their flags
DISPATCH_KEYS = ("subcommand", "run", "check_arguments")


class CLIError(ValueError):
    """A user error with a message ready to print."""


# ---------------------------------------------------------------------------------------------------------------
# Argument types


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {value!r}") from None
    if not 1 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number in 1..65535, got {number}")
    return number


def finite_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return number


def non_negative_float(value: str) -> float:
    number = finite_float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return number


# ---------------------------------------------------------------------------------------------------------------
# Defaults

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
# the default sampler of the stages whose `cascade.DEFAULT_SAMPLING` is None (inpainting), for the help
CONFIGURED_SAMPLER = "the model's configured sampler"


def pipeline_default(pipeline_class: str, name: str) -> float:
    """The default of a pipeline `__call__` argument, so the help shows the pipeline's own defaults."""
    return PIPELINE_DEFAULTS[pipeline_class][name]


def default_sampler(kind: str) -> str | None:
    """The sampler that a stage of `kind` runs without --sampler (`cascade.DEFAULT_SAMPLING`): DPM-Solver++ for
    text to image, image to image and upsampling; None, the model's configured sampler, for inpainting."""
    sampling = DEFAULT_SAMPLING[kind]
    return None if sampling is None else sampling[0]


# ---------------------------------------------------------------------------------------------------------------
# Groups of flags


def add_sampler_arguments(
    parser,
    kind: str | None,
    fast_steps: int,
    configured: str,
    flags=("--sampler", "--steps"),
    default_help: str | None = None,
) -> None:
    """`--sampler` and `--steps` (default: `fast_steps` with DPM-Solver++, else the scheduler configuration, which
    `configured` describes). The sampler defaults to the one of the stage `kind` (`default_sampler`); with `kind`
    None, to None: the command picks it from its inputs, as `default_help` says."""
    sampler_flag, steps_flag = flags
    default = None if kind is None else default_sampler(kind)
    parser.add_argument(
        sampler_flag,
        choices=SAMPLERS,
        default=default,
        help="dpm++ (diffusers' DPM-Solver++, the fast path), or GLIDE's own ddim or ancestral sampler "
        f"(default: {default_help or default or CONFIGURED_SAMPLER})",
    )
    parser.add_argument(
        steps_flag,
        type=positive_int,
        help=f"denoising steps (default: {fast_steps} with dpm++, otherwise the model's scheduler configuration: "
        f"{configured})",
    )


class StoreOutput(argparse.Action):
    """Stores -o/--output and notes that it was given (`generate --prompts` writes to --output_dir instead)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.output_given = True


def add_sampling_arguments(
    parser,
    pipeline_class: str,
    kind: str | None,
    output_default: str,
    output_help: str,
    fast_steps: int,
    configured: str,
    sampler_default_help: str | None = None,
) -> None:
    """-o, --num_images, --seed, --sampler / --steps (see `add_sampler_arguments`), --guidance_scale and
    --guidance_interval of a command that samples with `pipeline_class`."""
    parser.add_argument(
        "-o", "--output", type=Path, default=Path(output_default), action=StoreOutput, help=output_help
    )
    parser.add_argument("--num_images", type=positive_int, default=1, help="images to sample (default: %(default)s)")
    parser.add_argument(
        "--seed",
        type=seed_number,
        help="seed of the sampling noise, in [0, 2**64): the same seed gives the same images",
    )
    add_sampler_arguments(parser, kind, fast_steps, configured, default_help=sampler_default_help)
    parser.add_argument(
        "--guidance_scale",
        type=finite_float,
        default=pipeline_default(pipeline_class, "guidance_scale"),
        help="classifier-free guidance scale; <= 1 disables guidance (default: %(default)s)",
    )
    parser.add_argument(
        "--guidance_interval",
        nargs=2,
        type=non_negative_float,
        metavar=("LOW", "HIGH"),
        help="guide only the steps whose timestep t (0 = clean ... 999 = pure noise) has LOW <= t <= HIGH; the "
        "others run half the batch (default: every step). E.g. 300 999 (see docs/pipelines.md, 'Common to all pipelines')",
    )


def add_strength(parser, pipeline_class, what: str) -> None:
    parser.add_argument(
        "--strength",
        type=finite_float,
        default=pipeline_default(pipeline_class, "strength"),
        help=f"{what}, in (0, 1]: the last int(steps * strength) of the --steps steps run, from the image noised "
        "to that point (default: %(default)s)",
    )


def add_clip_arguments(parser) -> None:
    clip = parser.add_argument_group("CLIP guidance")
    clip.add_argument(
        "--clip",
        help="noised-CLIP folder, Hub repo id, or 'openai' (OpenAI's released model, fetched and converted on first use) (converted with `convert --model_type clip` or trained with "
        "`train-clip`), or 'default' for the embedded 32x32 one; not needed when the --model folder already holds "
        "the CLIP components",
    )
    clip.add_argument(
        "--clip_guidance_scale",
        type=non_negative_float,
        help="CLIP guidance scale; 0 disables it (default: 3.0, the notebook's, with --clip; otherwise 0). "
        "Combines with --guidance_scale; the notebook uses --guidance_scale 1 with CLIP guidance",
    )


def add_overwrite_input(parser, inputs: str) -> None:
    parser.add_argument(
        OVERWRITE_INPUT,
        action="store_true",
        help=f"let an output replace an input file ({inputs}); without it, a run that would write over one of its "
        "inputs (the same path, a symlink or a hard link to it) is refused before anything loads",
    )


def add_device_arguments(parser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, mps, ... (default: cpu)")
    parser.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="weights dtype (default: float32)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads of torch's operators (default: torch's, one per core). Lower it when other busy processes "
        "share the cores: threads that wait for each other can make a run many times slower; 1 is steady",
    )


def add_runtime_arguments(parser) -> None:
    add_device_arguments(parser)
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bars of the denoising loops")


def add_upsample_temp(parser, flag: str = "--upsample_temp") -> None:
    parser.add_argument(
        flag,
        dest="upsample_temp",
        type=non_negative_float,
        default=pipeline_default("GlideUpsamplePipeline", "upsample_temp"),
        help="GLIDE's upsample temperature: the initial noise is N(0, 1) times this (default: %(default)s)",
    )


# ---------------------------------------------------------------------------------------------------------------
# The command line


def command_of(argv: list[str]) -> str | None:
    """The subcommand that `argv` names: its first argument that is not an option (the top-level options, --help
    and --version, take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def builds_flags_of(command: str, argv: list[str] | None) -> bool:
    """Whether the parser of the command line `argv` gets the flags of `command` that a torch-importing module
    defines (the converter's, the trainers'): only when `argv` names `command`, or `argv` is None (every flag)."""
    return argv is None or command_of(argv) == command


def command_arguments(args: argparse.Namespace) -> argparse.Namespace:
    """`args` without the parser's dispatch entries (`DISPATCH_KEYS`): the command's own flags."""
    return argparse.Namespace(**{key: value for key, value in vars(args).items() if key not in DISPATCH_KEYS})


def recorded_command(name: str, argv: list[str]) -> str:
    """The command line of subcommand `name` as a model card records it: `diffusers-glide NAME <its flags>`."""
    return shlex.join([PROG, name, *argv[argv.index(name) + 1 :]])
