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

The folder is the pipeline object of the model type saved with `save_pretrained`, as diffusers' own conversion
scripts do. It is assembled in a staging folder next to `dump_path` and swapped in only when everything succeeded
(see `diffusers_glide.output_folders`): a failed or killed conversion never leaves a half-written folder, and
`overwrite` only ever replaces an earlier output, never a folder that holds the inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from accelerate import init_empty_weights
from huggingface_hub import HfApi, ModelCard

from .. import pipelines
from ..model_cards import (
    GLIDE_LIMITATIONS,
    GLIDE_PAPER,
    OPENAI_LICENSE_NOTE,
    openai_weights_note,
    pipeline_model_card,
    released_checkpoint_names,
)
from ..models import GlideTextEncoder, GlideUNet2DModel
from ..output_folders import OutputFolder
from ..schedulers import GlideScheduler
from ..tokenization import build_glide_tokenizer
from ..variants import GlideVariant, get_variant
from ..vocabularies import vocabulary_dir
from .options import configs_from_options, resolve_options
from .state_dict import (
    CheckpointMismatchError,
    check_against_model,
    format_keys,
    load_openai_checkpoint,
    split_openai_state_dict,
)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class Converted(Protocol):
    """What `write_pipeline_folder` saves: a `ConvertedGlide`, or the noised CLIP's `ConvertedCLIP`."""

    def save(self, folder: Path, dtype: torch.dtype, repo_id: str | None = None) -> None: ...


@dataclass
class ConvertedGlide:
    """The components of a converted checkpoint, before they are written anywhere.

    `released_name` is set when the checkpoint is OpenAI's released file of the model type (`"base"`,
    `"upsample"`, `"base_inpaint"`, `"upsample_inpaint"`: the `<name>.pt` of its download URL); the model card then
    names that file and its URL. None (the default) keeps a neutral origin sentence.
    """

    variant: GlideVariant
    unet: GlideUNet2DModel
    text_encoder: GlideTextEncoder
    tokenizer: object
    scheduler: GlideScheduler
    released_name: str | None = None

    def __post_init__(self):
        released_checkpoint_names(self.variant.model_type, self.released_name)  # ValueError for a wrong name

    @property
    def model_type(self) -> str:
        return self.variant.model_type

    def save(self, folder: Path, dtype: torch.dtype, repo_id: str | None = None) -> None:
        """Save the pipeline of the model type (`save_pretrained`) and the model card into an empty folder."""
        # `torch.nn.Module.to`: diffusers 0.42's `ModelMixin.to(dtype)` warns about fp32 modules even when a
        # model declares none.
        for model in (self.unet, self.text_encoder):
            torch.nn.Module.to(model, dtype)
        pipeline_class = getattr(pipelines, self.variant.pipeline_class)
        pipeline = pipeline_class(
            unet=self.unet, text_encoder=self.text_encoder, tokenizer=self.tokenizer, scheduler=self.scheduler
        )
        pipeline.save_pretrained(folder, safe_serialization=True)
        self.model_card(repo_id).save(folder / "README.md")

    def model_card(self, repo_id: str | None = None, released_name: str | None = None) -> ModelCard:
        """
        The card of the converted checkpoint: the weights' origin, license (MIT), OpenAI's stated limitations,
        library, tags and a usage example of its pipeline. `released_name` (default: the `released_name` field) names
        OpenAI's released file the checkpoint is, for the card to give its URL; None keeps a neutral origin.
        """
        model_type = self.model_type
        released_name = released_name if released_name is not None else self.released_name
        released_checkpoint_names(model_type, released_name)
        origin = openai_weights_note("GLIDE (filtered)", model_type, released=released_name is not None)
        return pipeline_model_card(
            self.variant,
            f"GLIDE ({model_type}) for diffusers",
            f"GLIDE `{model_type}` converted with diffusers-glide (`diffusers-glide convert --model_type {model_type}`).\n"
            f"{origin}\nPaper: {GLIDE_PAPER}.\n\n{OPENAI_LICENSE_NOTE}",
            repo_id=repo_id,
            tokenizer="GPT-2 BPE, lower-cased",
            scheduler="GlideScheduler with the sampling defaults of OpenAI's notebooks",
            license="mit",
            limitations=GLIDE_LIMITATIONS,
        )

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in getattr(self, name).parameters()) for name in ("unet", "text_encoder")}


def convert_state_dict(state_dict: dict[str, torch.Tensor], model_type: str, options: dict | None = None):
    """Build our UNet and text encoder from an OpenAI state dict.

    Returns `(unet, text_encoder, scheduler_config)`. Raises `CheckpointMismatchError` listing unknown source
    keys, missing parameters and shape mismatches. Works with meta tensors (no memory is used then).
    """
    return _convert_state_dict(state_dict, get_variant(model_type), options)


def _convert_state_dict(state_dict: dict[str, torch.Tensor], variant: GlideVariant, options: dict | None):
    resolved = resolve_options(variant, options)
    vocab_size = state_dict["token_embedding.weight"].shape[0] if "token_embedding.weight" in state_dict else 50257
    configs = configs_from_options(variant, resolved, vocab_size=vocab_size)
    unet_sd, text_sd, unconsumed = split_openai_state_dict(state_dict, configs.unet, configs.text_encoder)
    if unconsumed:
        raise CheckpointMismatchError(
            f"{len(unconsumed)} checkpoint key(s) do not belong to a GLIDE {variant.model_type} model with these "
            f"options (check --model_type and --options_json): {format_keys(unconsumed)}"
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
    vocab_dir: str | os.PathLike | None = None,
    options: dict | None = None,
    released_name: str | None = None,
) -> ConvertedGlide:
    """Load and convert one OpenAI checkpoint into diffusers-glide components (in memory).

    `vocab_dir` is the folder of GLIDE's GPT-2 BPE files (or a saved tokenizer); by default the vocabularies shipped
    with the package (`diffusers_glide.vocabularies.vocabulary_dir()`), which are GLIDE's own. Give `released_name`
    (e.g. `"base_inpaint"` for `base_inpaint.pt`) only when the checkpoint is OpenAI's released file of
    `model_type`: the model card then names it and its download URL (see `ConvertedGlide`).
    """
    variant = get_variant(model_type)
    released_checkpoint_names(model_type, released_name)  # a wrong name fails before the loading
    state_dict = load_openai_checkpoint(checkpoint_path)
    unet, text_encoder, scheduler_config = _convert_state_dict(state_dict, variant, options)
    if vocab_dir is None:
        vocab_dir = vocabulary_dir()
    tokenizer = build_glide_tokenizer(vocab_dir)
    if len(tokenizer) != text_encoder.config.vocab_size:
        raise ValueError(
            f"The tokenizer in {vocab_dir} has {len(tokenizer)} tokens but the checkpoint's token embedding has "
            f"{text_encoder.config.vocab_size} rows."
        )
    scheduler = GlideScheduler(**scheduler_config)
    return ConvertedGlide(variant, unet, text_encoder, tokenizer, scheduler, released_name=released_name)


def write_pipeline_folder(
    converted: Converted,
    dump_path: str | os.PathLike,
    dtype: str = "float32",
    overwrite: bool = False,
    repo_id: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
) -> Path:
    """Save a conversion (a pipeline folder, or the noised CLIP's component folders) atomically into `dump_path`.

    With `overwrite`, only an earlier output (a GLIDE pipeline or noised-CLIP folder) is replaced; the current
    folder, the home folder, their ancestors and any folder that is or holds one of `inputs` (the checkpoints,
    options file and vocabulary of the conversion) are refused.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}.")
    output = OutputFolder(dump_path, overwrite=overwrite, inputs=inputs)
    return output.write(lambda staging: converted.save(staging, DTYPES[dtype], repo_id))


def push_folder_to_hub(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None):
    """Create (if needed) the Hub model repo `repo_id` and upload the converted folder to it."""
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), repo_type="model", commit_message="Upload GLIDE (diffusers-glide)"
    )
