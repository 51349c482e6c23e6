"""Command-line arguments of the GLIDE trainer (`diffusers-glide train`, `python -m diffusers_glide.training`)."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass

from ..variants import MODEL_TYPES
from .masks import MASK_TYPES
from .presets import PRESETS


def json_dict(value: str) -> dict:
    """A JSON object given inline or as a path to a .json file (an argparse `type`: bad input is an argument error)."""
    text = value
    if not value.lstrip().startswith("{"):
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise argparse.ArgumentTypeError(f"not a JSON object nor a readable JSON file: {value!r} ({e})") from e
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"invalid JSON in {value!r}: {e}") from e
    if not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(parsed).__name__}")
    return parsed


def _probability(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {number}")
    return number


@dataclass(frozen=True)
class Interval:
    """The values a numeric flag accepts: finite numbers between `low` and `high`, each bound open or closed."""

    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        high = "inf)" if math.isinf(self.high) else f"{self.high:g}{')' if self.high_open else ']'}"
        return f"{'(' if self.low_open else '['}{self.low:g}, {high}"


# The optimizer's numbers (and the loss's): a NaN, an infinity or a learning rate like 1e10 makes every weight NaN
# within a step or two, so they are refused before training. The learning rate and the weight decay are at most 1, so that AdamW's
# decoupled decay (weights times 1 - lr * weight_decay) never flips the weights' sign.
OPTIMIZER_RANGES = {
    "learning_rate": Interval(0.0, 1.0, low_open=True),
    "adam_beta1": Interval(0.0, 1.0, high_open=True),
    "adam_beta2": Interval(0.0, 1.0, high_open=True),
    "adam_epsilon": Interval(0.0, low_open=True),
    "adam_weight_decay": Interval(0.0, 1.0),
    "max_grad_norm": Interval(0.0),  # 0 disables clipping
    "vb_weight": Interval(0.0),
    "noise_offset": Interval(0.0),
    "timestep_bias_portion": Interval(0.0, 1.0),
    "snr_floor": Interval(0.0),
    "pyramid_noise_discount": Interval(0.0, 1.0, high_open=True),
    "shapes_position_prob": Interval(0.0, 1.0),
    "timestep_bias_multiplier": Interval(0.0, low_open=True),
}


SEED_LIMIT = 2**32  # accelerate's `set_seed` seeds numpy too, which takes seeds below this


def training_seed(value: str) -> int:
    """The argparse type of the trainers' `--seed`: an integer in [0, 2**32)."""
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {value!r}") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**32), got {seed}")
    return seed


def check_numeric_ranges(parser: argparse.ArgumentParser, args: argparse.Namespace, ranges: dict) -> None:
    """A usage error (exit 2) for the first flag of `ranges` whose value is outside its interval (flags that `args`
    lacks, as `train-clip` lacks the Adam betas, are skipped)."""
    for name, interval in ranges.items():
        value = getattr(args, name, None)
        if value is not None and value not in interval:
            short = f"{value:g}"  # 1e+10 rather than 10000000000.0, unless that rounds the value
            shown = short if float(short) == value else repr(value)
            parser.error(f"--{name} must be a finite number in {interval}, got {shown}")


def add_data_source_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The training-data flags that `build_dataset` reads (shared by `train` and `train-clip`); returns the group."""
    data = parser.add_argument_group("data (one source)")
    source = data.add_mutually_exclusive_group()
    source.add_argument("--train_data_dir", help="folder of images with metadata.jsonl or one .txt caption per image")
    source.add_argument("--dataset_name", help="a Hugging Face `datasets` dataset name or local path")
    source.add_argument("--shapes", action="store_true", help="the procedural shapes dataset (the default)")
    data.add_argument("--dataset_config_name")
    data.add_argument("--dataset_split", default="train")
    data.add_argument("--image_column", default="image")
    data.add_argument("--caption_column", default="text")
    data.add_argument("--num_shape_images", type=int, default=200_000, help="size of one shapes epoch")
    data.add_argument(
        "--shapes_position_prob",
        type=float,
        default=0.5,
        help="how often a shapes caption names the position of its shape (the shape is placed either way)",
    )
    data.add_argument("--no_center_crop", action="store_true", help="squash images to squares instead of cropping")
    return data


def add_training_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    model = parser.add_argument_group("model")
    model.add_argument("--output_dir", required=True, help="where checkpoints, samples and the final pipeline go")
    model.add_argument("--model_type", default="base", choices=MODEL_TYPES, help="GLIDE variant to train")
    model.add_argument(
        "--pretrained_model",
        help="fine-tune this pipeline (local folder or Hub id); a base model is extended to an inpainting or "
        "upsampling --model_type with zero-initialised new input channels. Omit to train from scratch.",
    )
    model.add_argument("--preset", default="shapes-tiny", choices=sorted(PRESETS), help="architecture from scratch")
    model.add_argument("--unet_config", type=json_dict, help="JSON (inline or file) overriding the preset's UNet")
    model.add_argument(
        "--text_encoder_config", type=json_dict, help="JSON (inline or file) overriding the preset's text encoder"
    )
    model.add_argument(
        "--tokenizer",
        help="from scratch: a saved tokenizer folder or GLIDE's GPT-2 BPE files (encoder.json + vocab.bpe). "
        "Default: a word-level tokenizer over the words of the training captions.",
    )
    model.add_argument("--freeze_text_encoder", action="store_true", help="train only the UNet")
    model.add_argument("--gradient_checkpointing", action="store_true", help="trade compute for memory")

    data = add_data_source_arguments(parser)
    data.add_argument("--resolution", type=int, help="training image size (default: the UNet's sample_size)")
    data.add_argument("--low_res_size", type=int, help="upsampler input size (default: resolution // 4)")
    data.add_argument(
        "--crop_size",
        type=int,
        help="train on random crop_size x crop_size crops of the --resolution images (the low-resolution input and "
        "the inpainting masks are made from the crop); the model keeps --resolution as its size. For fully "
        "convolutional upsamplers: many more training pixels per second than whole images",
    )
    data.add_argument(
        "--caption_dropout", type=_probability, default=0.2, help="fraction of captions replaced by '' (for CFG)"
    )
    data.add_argument("--mask_type", default="mixed", choices=MASK_TYPES, help="inpainting training masks")
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--train_batch_size", type=int, default=32, help="per device")
    optim.add_argument("--max_train_steps", type=int, default=1000, help="optimizer steps")
    optim.add_argument("--gradient_accumulation_steps", type=int, default=1)
    optim.add_argument("--learning_rate", type=float, default=1e-4, help="in (0, 1]")
    optim.add_argument("--lr_scheduler", default="constant_with_warmup", help="a diffusers.optimization schedule")
    optim.add_argument("--lr_warmup_steps", type=int, default=0)
    optim.add_argument("--adam_beta1", type=float, default=0.9)
    optim.add_argument("--adam_beta2", type=float, default=0.999)
    optim.add_argument("--adam_weight_decay", type=float, default=0.0)
    optim.add_argument("--adam_epsilon", type=float, default=1e-8)
    optim.add_argument("--max_grad_norm", type=float, default=1.0, help="gradient clipping norm; 0 disables it")
    optim.add_argument("--vb_weight", type=float, default=1.0, help="weight of the variational-bound loss term")
    optim.add_argument(
        "--noise_offset",
        type=float,
        default=0.0,
        help="add this times a per-image, per-channel N(0, 1) constant to the training noise ('offset noise'); "
        "helps small models learn the overall colour of an image from the text. 0 (default) is GLIDE's objective",
    )
    optim.add_argument(
        "--pyramid_noise_discount",
        type=float,
        default=0.0,
        help="add noise drawn at 1/2, 1/4, ... of the image size, the i-th weighted by DISCOUNT**i ('multi-resolution "
        "noise'), so that colours and places stay uncertain in x_t for longer and are learned from the text; "
        "0 (default): GLIDE's white noise",
    )
    optim.add_argument(
        "--snr_floor",
        type=float,
        default=0.0,
        help="weigh the epsilon loss of each step by max(1, SNR_FLOOR / SNR(t)) (at most 100), so that the noisiest "
        "steps, where only the text says where things go, count; 0 (default): GLIDE's unweighted loss",
    )
    optim.add_argument(
        "--timestep_bias_portion",
        type=float,
        default=0.0,
        help="the noisiest fraction of the timesteps to draw more often (diffusers' 'later' timestep bias); those "
        "steps decide where things go, which a small model otherwise barely learns. 0 (default): uniform, as GLIDE",
    )
    optim.add_argument(
        "--timestep_bias_multiplier",
        type=float,
        default=1.0,
        help="how many times as often those timesteps are drawn (default 1: uniform)",
    )
    optim.add_argument("--ema_decay", type=float, default=0.9999, help="maximum EMA decay; 0 disables the EMA")
    optim.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], help="default: accelerate's config")
    optim.add_argument("--seed", type=training_seed, default=0)

    run = parser.add_argument_group("checkpoints, samples, logging")
    run.add_argument("--checkpointing_steps", type=int, default=500, help="save a resumable state every N steps")
    run.add_argument("--checkpoints_total_limit", type=int, default=2, help="keep only the newest N states")
    run.add_argument("--resume_from_checkpoint", help="a checkpoint folder, or 'latest' in --output_dir")
    run.add_argument("--sample_steps", type=int, default=500, help="write sample images every N steps (0: never)")
    run.add_argument("--sample_prompts", nargs="+", help="prompts of the sample images")
    run.add_argument("--sample_respacing", default="25", help="GlideScheduler respacing of the sample images")
    run.add_argument("--sample_sampler", default="ddim", choices=["ddim", "ddpm"], help="sampler of the samples")
    run.add_argument("--sample_guidance_scale", type=float, default=3.0)
    run.add_argument("--report_to", help="an accelerate tracker: tensorboard, wandb, ...")
    run.add_argument("--no_progress_bar", action="store_true")
    return parser


def check_training_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if args.tokenizer and args.pretrained_model:
        parser.error("--tokenizer is only for training from scratch; a --pretrained_model brings its own")
    for name in ("train_batch_size", "max_train_steps", "gradient_accumulation_steps", "num_shape_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if args.lr_warmup_steps < 0:
        parser.error(f"--lr_warmup_steps must be at least 0, got {args.lr_warmup_steps}")
    check_numeric_ranges(parser, args, OPTIMIZER_RANGES)
    if not 0.0 <= args.ema_decay < 1.0:
        parser.error(f"--ema_decay must be in [0, 1), got {args.ema_decay}")
    if args.resolution is not None and args.resolution < 8:
        parser.error(f"--resolution must be at least 8, got {args.resolution}")
    if args.crop_size is not None and args.crop_size < 8:
        parser.error(f"--crop_size must be at least 8, got {args.crop_size}")
    return args


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Train or fine-tune a GLIDE model (any of the four variants) with accelerate."
    )
    return add_training_arguments(parser)


def parse_training_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    return check_training_arguments(parser, parser.parse_args(argv))
