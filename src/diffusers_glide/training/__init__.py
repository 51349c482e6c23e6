"""Training and fine-tuning GLIDE models (all four variants) with accelerate.

Run `diffusers-glide train --help`, `python -m diffusers_glide.training --help` or
`accelerate launch -m diffusers_glide.training ...` for multi-GPU / multi-node jobs.
"""

from .arguments import build_parser, parse_training_args
from .data import HFImageCaptionDataset, ImageCaptionFolder, image_to_tensor
from .losses import GlideDiffusionLoss
from .masks import random_inpaint_masks
from .presets import PRESETS, adapt_unet_to_variant, build_models_from_preset
from .trainer import GlideTrainer, train

__all__ = [
    "PRESETS",
    "GlideDiffusionLoss",
    "GlideTrainer",
    "HFImageCaptionDataset",
    "ImageCaptionFolder",
    "adapt_unet_to_variant",
    "build_models_from_preset",
    "build_parser",
    "image_to_tensor",
    "parse_training_args",
    "random_inpaint_masks",
    "train",
]
