"""Convert an OpenAI GLIDE checkpoint (`base.pt`, `upsample.pt`, `base_inpaint.pt`, `upsample_inpaint.pt`)
into a diffusers pipeline folder:

```
<dump_path>/
  model_index.json    the pipeline class of that model type and its components
  unet/               GlideUNet2DModel (safetensors)
  text_encoder/       GlideTextEncoder (safetensors)
  tokenizer/          GLIDE's GPT-2 BPE as a transformers fast tokenizer
  scheduler/          GlideScheduler with the sampling defaults of OpenAI's notebooks
  README.md           model card
```

The folder is assembled in a temporary directory next to `dump_path` and moved into place only when
everything succeeded, so a failed conversion never leaves a half-written folder behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import diffusers
import torch
from accelerate import init_empty_weights
from huggingface_hub import HfApi, ModelCard, ModelCardData

from ..models import GlideTextEncoder, GlideUNet2DModel
from ..schedulers import GlideScheduler
from ..tokenization import build_glide_tokenizer
from .options import PIPELINE_CLASS, configs_from_options, resolve_options
from .state_dict import CheckpointMismatchError, check_against_model, format_keys, split_openai_state_dict

if TYPE_CHECKING:
    from .clip import ConvertedCLIP

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class ConvertedGlide:
    """The components of a converted checkpoint, before they are written anywhere."""

    model_type: str
    unet: GlideUNet2DModel
    text_encoder: GlideTextEncoder
    tokenizer: object
    scheduler: GlideScheduler

    def save(self, folder: Path, dtype: torch.dtype, repo_id: str | None = None) -> None:
        save_converted(self, folder, dtype, repo_id)

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in getattr(self, name).parameters()) for name in ("unet", "text_encoder")}


def load_openai_checkpoint(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an OpenAI `.pt` state dict safely (`weights_only=True`), with clear errors."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated / non-torch / unsafe files
        raise ValueError(
            f"Could not read {path} as a PyTorch state dict with torch.load(weights_only=True): {error}"
        ) from error
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of parameter names to tensors).")
    return state_dict


def convert_state_dict(state_dict: dict[str, torch.Tensor], model_type: str, options: dict | None = None):
    """Build our UNet and text encoder from an OpenAI state dict.

    Returns `(unet, text_encoder, scheduler_config)`. Raises `CheckpointMismatchError` listing unknown source
    keys, missing parameters and shape mismatches. Works with meta tensors (no memory is used then).
    """
    resolved = resolve_options(model_type, options)
    vocab_size = state_dict["token_embedding.weight"].shape[0] if "token_embedding.weight" in state_dict else 50257
    configs = configs_from_options(model_type, resolved, vocab_size=vocab_size)
    unet_sd, text_sd, unconsumed = split_openai_state_dict(state_dict, configs.unet, configs.text_encoder)
    if unconsumed:
        raise CheckpointMismatchError(
            f"{len(unconsumed)} checkpoint key(s) do not belong to a GLIDE {model_type} model with these options "
            f"(check --model_type and --options_json): {format_keys(unconsumed)}"
        )
    with init_empty_weights():
        unet = GlideUNet2DModel(**configs.unet)
        text_encoder = GlideTextEncoder(**configs.text_encoder)
    check_against_model(unet_sd, unet.state_dict(), "unet")
    check_against_model(text_sd, text_encoder.state_dict(), "text_encoder")
    # Released files may hold float16 tensors; the maths is done in float32 and cast on saving.
    unet.load_state_dict({k: v.float() for k, v in unet_sd.items()}, strict=True, assign=True)
    text_encoder.load_state_dict({k: v.float() for k, v in text_sd.items()}, strict=True, assign=True)
    return unet.eval(), text_encoder.eval(), configs.scheduler


def convert_glide_checkpoint(
    checkpoint_path: str | os.PathLike,
    model_type: str,
    vocab_dir: str | os.PathLike,
    options: dict | None = None,
) -> ConvertedGlide:
    """Load and convert one OpenAI checkpoint into diffusers-glide components (in memory)."""
    state_dict = load_openai_checkpoint(checkpoint_path)
    unet, text_encoder, scheduler_config = convert_state_dict(state_dict, model_type, options)
    tokenizer = build_glide_tokenizer(vocab_dir)
    if len(tokenizer) != text_encoder.config.vocab_size:
        raise ValueError(
            f"The tokenizer in {vocab_dir} has {len(tokenizer)} tokens but the checkpoint's token embedding has "
            f"{text_encoder.config.vocab_size} rows."
        )
    return ConvertedGlide(model_type, unet, text_encoder, tokenizer, GlideScheduler(**scheduler_config))


def _library_and_class(obj) -> list[str]:
    # What diffusers' `DiffusionPipeline.save_pretrained` records for a component: the defining module for
    # third-party classes, the library name for diffusers/transformers ones.
    module = type(obj).__module__
    library = module.split(".")[0]
    return [library if library in ("diffusers", "transformers") else module, type(obj).__name__]


def save_converted(converted: ConvertedGlide, folder: Path, dtype: torch.dtype, repo_id: str | None = None) -> None:
    """Write the pipeline folder (components, model_index.json, model card) into an existing empty folder."""
    # `torch.nn.Module.to`: diffusers 0.42's `ModelMixin.to(dtype)` warns about fp32 modules even when a
    # model declares none.
    for name in ("unet", "text_encoder"):
        model = getattr(converted, name)
        torch.nn.Module.to(model, dtype)
        model.save_pretrained(folder / name)
    converted.tokenizer.save_pretrained(folder / "tokenizer")
    converted.scheduler.save_pretrained(folder / "scheduler")
    model_index = {
        "_class_name": PIPELINE_CLASS[converted.model_type],
        "_diffusers_version": diffusers.__version__,
    }
    for name in ("scheduler", "text_encoder", "tokenizer", "unet"):
        model_index[name] = _library_and_class(getattr(converted, name))
    (folder / "model_index.json").write_text(json.dumps(model_index, indent=2, sort_keys=True) + "\n")
    build_model_card(converted.model_type, repo_id).save(folder / "README.md")


def write_pipeline_folder(
    converted: ConvertedGlide | ConvertedCLIP,
    dump_path: str | os.PathLike,
    dtype: str = "float32",
    overwrite: bool = False,
    repo_id: str | None = None,
) -> Path:
    """Save a conversion (a pipeline folder, or the noised CLIP's component folders) atomically: build the folder
    next to `dump_path`, then move it into place."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    dump_path = Path(dump_path).resolve()
    if dump_path.exists() and not dump_path.is_dir():
        raise FileExistsError(f"{dump_path} exists and is not a folder.")
    if dump_path.is_dir() and any(dump_path.iterdir()) and not overwrite:
        raise FileExistsError(f"{dump_path} already exists and is not empty; pass overwrite=True (--overwrite).")
    dump_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dump_path.name}.", suffix=".partial", dir=dump_path.parent))
    try:
        converted.save(staging, DTYPES[dtype], repo_id)
        if dump_path.exists():
            shutil.rmtree(dump_path)
        os.replace(staging, dump_path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return dump_path


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None):
    """Create (if needed) the Hub model repo `repo_id` and upload the converted folder to it."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message="Upload GLIDE (diffusers-glide)"
    )


_CARD_USAGE = {
    "GlidePipeline": 'pipe = GlidePipeline.from_pretrained("{repo}")\nimage = pipe("an oil painting of a corgi").images[0]',
    "GlideUpsamplePipeline": 'pipe = GlideUpsamplePipeline.from_pretrained("{repo}")\n'
    'image = pipe("an oil painting of a corgi", image=low_res_image).images[0]',
    "GlideInpaintPipeline": 'pipe = GlideInpaintPipeline.from_pretrained("{repo}")\n'
    'image = pipe("a corgi", image=image, mask_image=mask).images[0]  # white = repaint',
}


def build_model_card(model_type: str, repo_id: str | None = None) -> ModelCard:
    """A model card with license, library and tags, and a usage example for the pipeline of `model_type`."""
    pipeline_class = PIPELINE_CLASS[model_type]
    data = ModelCardData(
        license="mit",
        library_name="diffusers",
        pipeline_tag="text-to-image" if model_type == "base" else "image-to-image",
        tags=["glide", "diffusers-glide", "text-to-image", f"glide-{model_type}"],
    )
    usage = _CARD_USAGE[pipeline_class].format(repo=repo_id or "path/to/this/folder")
    content = f"""---
{data.to_yaml()}
---

# GLIDE ({model_type}) for diffusers

OpenAI's GLIDE (filtered) `{model_type}` checkpoint converted with diffusers-glide
(`convert_glide_to_diffusers.py --model_type {model_type}`). Weights: OpenAI, MIT license
(glide-text2im). Paper: *GLIDE: Towards Photorealistic Image Generation and Editing with
Text-Guided Diffusion Models* (Nichol et al., 2021).

Components: `unet` (GlideUNet2DModel), `text_encoder` (GlideTextEncoder), `tokenizer` (GPT-2 BPE,
lower-cased), `scheduler` (GlideScheduler with the sampling defaults of OpenAI's notebooks).

## Usage

```python
# pip install diffusers-glide
from diffusers_glide import {pipeline_class}

{usage}
```

Load it with the diffusers-glide class above. diffusers' generic `DiffusionPipeline.from_pretrained`
cannot load this repo, with or without `trust_remote_code=True`: it only finds pipeline and component
classes that are part of diffusers / transformers or shipped as code inside the repo.
"""
    return ModelCard(content)
