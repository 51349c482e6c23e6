"""diffusers-glide: OpenAI's GLIDE as Hugging Face diffusers models, scheduler and pipelines."""

from .clip_tokenization import build_clip_tokenizer, build_small_clip_tokenizer, tokenize_clip_prompts
from .embedded import embedded_model_path
from .models import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideTextEncoder, GlideUNet2DModel
from .pipelines import (
    GlideImg2ImgPipeline,
    GlideInpaintPipeline,
    GlidePipeline,
    GlideUpsamplePipeline,
    InpaintEdit,
    apply_edits,
)
from .schedulers import GlideScheduler, GlideSchedulerOutput
from .tokenization import build_glide_tokenizer, tokenize_prompts

__version__ = "0.1.0.dev0"

__all__ = [
    "GlideCLIPImageEncoder",
    "GlideCLIPTextEncoder",
    "GlideImg2ImgPipeline",
    "GlideInpaintPipeline",
    "GlidePipeline",
    "GlideScheduler",
    "GlideSchedulerOutput",
    "GlideTextEncoder",
    "GlideUNet2DModel",
    "GlideUpsamplePipeline",
    "InpaintEdit",
    "apply_edits",
    "build_clip_tokenizer",
    "build_glide_tokenizer",
    "build_small_clip_tokenizer",
    "embedded_model_path",
    "tokenize_clip_prompts",
    "tokenize_prompts",
]
