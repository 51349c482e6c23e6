"""diffusers-glide: OpenAI's GLIDE as Hugging Face diffusers models, scheduler and pipelines."""

from .models import GlideTextEncoder, GlideUNet2DModel
from .pipelines import GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline
from .schedulers import GlideScheduler, GlideSchedulerOutput
from .tokenization import build_glide_tokenizer, tokenize_prompts

__version__ = "0.1.0.dev0"

__all__ = [
    "GlideInpaintPipeline",
    "GlidePipeline",
    "GlideScheduler",
    "GlideSchedulerOutput",
    "GlideTextEncoder",
    "GlideUNet2DModel",
    "GlideUpsamplePipeline",
    "build_glide_tokenizer",
    "tokenize_prompts",
]
