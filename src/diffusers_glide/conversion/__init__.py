"""Conversion of OpenAI's released GLIDE checkpoints into diffusers-glide pipeline folders."""

from ..variants import MODEL_TYPES
from .clip import CLIP_MODEL_TYPE, ConvertedCLIP, convert_clip_checkpoints, convert_clip_state_dicts
from .convert import (
    ConvertedGlide,
    convert_glide_checkpoint,
    convert_state_dict,
    push_folder_to_hub,
    write_pipeline_folder,
)
from .options import configs_from_options, default_options, resolve_options
from .state_dict import CheckpointMismatchError, load_openai_checkpoint

__all__ = [
    "CLIP_MODEL_TYPE",
    "ConvertedCLIP",
    "convert_clip_checkpoints",
    "convert_clip_state_dicts",
    "MODEL_TYPES",
    "CheckpointMismatchError",
    "ConvertedGlide",
    "configs_from_options",
    "convert_glide_checkpoint",
    "convert_state_dict",
    "default_options",
    "load_openai_checkpoint",
    "push_folder_to_hub",
    "resolve_options",
    "write_pipeline_folder",
]
