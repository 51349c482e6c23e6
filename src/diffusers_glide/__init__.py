"""diffusers-glide: OpenAI's GLIDE as Hugging Face diffusers models, scheduler and pipelines.

The public names are imported on first use (PEP 562), as diffusers' own `__init__` does: `import diffusers_glide`
and the `diffusers-glide` command's help do not wait for torch and diffusers.
"""

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0.dev0"

# public name -> the submodule that defines it
_EXPORTS: dict[str, str] = {
    "GlideCLIPImageEncoder": "models",
    "GlideCLIPTextEncoder": "models",
    "GlideImg2ImgPipeline": "pipelines",
    "GlideInpaintPipeline": "pipelines",
    "GlidePipeline": "pipelines",
    "GlideScheduler": "schedulers",
    "GlideSchedulerOutput": "schedulers",
    "GlideTextEncoder": "models",
    "GlideUNet2DModel": "models",
    "GlideUpsamplePipeline": "pipelines",
    "InpaintEdit": "pipelines",
    "apply_edits": "pipelines",
    "Cascade": "cascade",
    "build_clip_tokenizer": "clip_tokenization",
    "build_glide_tokenizer": "tokenization",
    "build_small_clip_tokenizer": "clip_tokenization",
    "embedded_model_path": "embedded",
    "openai_model_path": "openai_checkpoints",
    "tokenize_clip_prompts": "clip_tokenization",
    "tokenize_prompts": "tokenization",
}
__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # the names for type checkers and IDEs
    from .cascade import Cascade  # noqa: F401
    from .clip_tokenization import build_clip_tokenizer, build_small_clip_tokenizer, tokenize_clip_prompts  # noqa: F401
    from .embedded import embedded_model_path  # noqa: F401
    from .models import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideTextEncoder, GlideUNet2DModel  # noqa: F401
    from .openai_checkpoints import openai_model_path  # noqa: F401
    from .pipelines import (  # noqa: F401
        GlideImg2ImgPipeline,
        GlideInpaintPipeline,
        GlidePipeline,
        GlideUpsamplePipeline,
        InpaintEdit,
        apply_edits,
    )
    from .schedulers import GlideScheduler, GlideSchedulerOutput  # noqa: F401
    from .tokenization import build_glide_tokenizer, tokenize_prompts  # noqa: F401


def __getattr__(name: str):
    """A public name, imported from its submodule; or a submodule (`diffusers_glide.pipelines`), imported."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if not name.startswith("_"):  # dunder lookups (`__wrapped__`, ...) are no submodules
        try:
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":  # the submodule exists but imports something missing
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
