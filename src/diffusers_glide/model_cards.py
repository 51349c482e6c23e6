"""The model cards (README.md) of the folders this package writes: converted checkpoints, the noised CLIP and
trained models. One layout for all: metadata, title, description, components, usage, notes, limitations, how to
reproduce. The cards of converted OpenAI weights name their origin (the released file and its URL when the caller
says it converted one), their MIT license and the limitations OpenAI's model card states."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from huggingface_hub import ModelCard, ModelCardData

from .variants import GlideVariant

# What a pipeline call looks like, per pipeline class ("{repo}" is the folder or Hub repo id).
_PIPELINE_CALLS = {
    "GlidePipeline": 'image = pipe("an oil painting of a corgi").images[0]',
    "GlideUpsamplePipeline": 'image = pipe("an oil painting of a corgi", image=low_res_image).images[0]',
    "GlideInpaintPipeline": 'image = pipe("a corgi", image=image, mask_image=mask).images[0]  # white = repaint',
}
# OpenAI's released checkpoints (glide_text2im/download.py): the file names, without `.pt`, of each model type.
GLIDE_TEXT2IM_URL = "https://github.com/openai/glide-text2im"
RELEASED_CHECKPOINT_URL = "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/{name}.pt"
RELEASED_CHECKPOINT_NAMES: dict[str, tuple[str, ...]] = {
    "base": ("base",),
    "upsample": ("upsample",),
    "base-inpaint": ("base_inpaint",),
    "upsample-inpaint": ("upsample_inpaint",),
    "clip": ("clip_image_enc", "clip_text_enc"),
}
GLIDE_PAPER = (
    "*GLIDE: Towards Photorealistic Image Generation and Editing with Text-Guided Diffusion Models* (Nichol et al.,\n"
    "2021, [arXiv:2112.10741](https://arxiv.org/abs/2112.10741))"
)
OPENAI_LICENSE_NOTE = (
    "License: MIT. OpenAI's glide-text2im repository and the weights it releases are under the MIT license\n"
    "(Copyright (c) 2021 OpenAI)."
)
_OPENAI_MODEL_CARD = f"[model card]({GLIDE_TEXT2IM_URL}/blob/main/model-card.md)"
# What OpenAI's model card (glide-text2im's model-card.md) says of the released models, shortened.
GLIDE_LIMITATIONS = (
    f"## Limitations\n\nFrom OpenAI's {_OPENAI_MODEL_CARD} of the released GLIDE (filtered) models:\n"
    "they were trained on a filtered dataset from which images of people, violent objects and some hate symbols\n"
    "were removed; they are small (the base model has about 385M parameters), which limits binding attributes to\n"
    "objects and composing several objects; they are released for research, not recommended for commercial use,\n"
    "and not intended to generate images of people. Do not expect faithful images of people, and expect biases of\n"
    "the training data to show (OpenAI's card notes, among others, a bias toward Western-centric concepts)."
)
CLIP_LIMITATIONS = (
    f"## Limitations\n\nFrom OpenAI's {_OPENAI_MODEL_CARD} of the released models: the noised CLIP was\n"
    "trained on the filtered dataset of GLIDE (filtered), from which images of people, violent objects and some\n"
    "hate symbols were removed, augmented with a filtered version of the original CLIP's training data. It is\n"
    "released for research and may reproduce biases of its training data."
)
LOADING_NOTE = (
    "Load it with the diffusers-glide class above. diffusers' generic `DiffusionPipeline.from_pretrained`\n"
    "cannot load this repo, with or without `trust_remote_code=True`: it only finds pipeline and component\n"
    "classes that are part of diffusers / transformers or shipped as code inside the repo."
)


def released_checkpoint_names(model_type: str, released_name: str | None = None) -> tuple[str, ...]:
    """
    The names (without `.pt`) of OpenAI's released checkpoint file(s) of `model_type` ("base" -> `("base",)`,
    "base-inpaint" -> `("base_inpaint",)`, "clip" -> both towers). With `released_name`, checks that it is that
    file's name (a single-file model type) and raises `ValueError` otherwise.
    """
    if model_type not in RELEASED_CHECKPOINT_NAMES:
        raise ValueError(
            f"OpenAI released no {model_type!r} checkpoint; model types: {list(RELEASED_CHECKPOINT_NAMES)}."
        )
    names = RELEASED_CHECKPOINT_NAMES[model_type]
    if released_name is not None and names != (released_name,):
        raise ValueError(
            f"released_name={released_name!r} is not OpenAI's released {model_type!r} checkpoint: that is "
            f"{' + '.join(names)!r} ({', '.join(RELEASED_CHECKPOINT_URL.format(name=name) for name in names)})."
        )
    return names


def openai_weights_note(what: str, model_type: str, released: bool) -> str:
    """
    Where converted OpenAI weights come from. With `released`: OpenAI's released `what` checkpoint file(s) of
    `model_type` and their download URLs. Otherwise a neutral sentence, since a checkpoint given by path may be any
    checkpoint in OpenAI's format.
    """
    names = released_checkpoint_names(model_type)
    files = " and ".join(f"`{name}.pt`" for name in names)
    plural = "s" if len(names) > 1 else ""
    if not released:
        checkpoints = "OpenAI GLIDE checkpoints" if plural else "an OpenAI GLIDE checkpoint"
        return f"Weights: converted from {checkpoints} in the format of glide-text2im's {files}."
    urls = "\n".join(f"<{RELEASED_CHECKPOINT_URL.format(name=name)}>" for name in names)
    return (
        f"Weights: OpenAI's released {what} checkpoint{plural} {files}\n{urls}\n"
        f"(published with [glide-text2im]({GLIDE_TEXT2IM_URL}))."
    )


def build_model_card(
    title: str,
    description: str,
    components: Mapping[str, str],
    usage: str,
    tags: Sequence[str],
    *,
    install: str = "pip install diffusers-glide",
    license: str | None = None,
    pipeline_tag: str | None = None,
    notes: str | None = None,
    limitations: str | None = None,
    reproduce_command: str | None = None,
) -> ModelCard:
    """
    A model card: YAML metadata (library diffusers, `tags`, optional license / pipeline tag), `# title`, the
    description, the components as `name` (what), a Python `usage` snippet after an install comment, optional notes,
    an optional limitations section, and optionally the shell command that reproduces the folder.
    """
    data = ModelCardData(license=license, library_name="diffusers", pipeline_tag=pipeline_tag, tags=list(tags))
    component_list = ", ".join(f"`{name}` ({what})" for name, what in components.items())
    sections = [
        f"---\n{data.to_yaml()}\n---",
        f"# {title}",
        description,
        f"Components: {component_list}.",
        f"## Usage\n\n```python\n# {install}\n{usage}\n```",
    ]
    if notes:
        sections.append(notes)
    if limitations:
        sections.append(limitations)
    if reproduce_command:
        sections.append(f"## Reproduce\n\n```bash\n{reproduce_command}\n```")
    return ModelCard("\n\n".join(sections) + "\n")


def pipeline_model_card(
    variant: GlideVariant,
    title: str,
    description: str,
    *,
    repo_id: str | None = None,
    tokenizer: str = "a transformers tokenizer",
    scheduler: str = "GlideScheduler",
    license: str | None = None,
    limitations: str | None = None,
    reproduce_command: str | None = None,
) -> ModelCard:
    """The card of a pipeline folder of `variant`, with a usage example of its pipeline class."""
    pipeline_class = variant.pipeline_class
    usage = (
        f"from diffusers_glide import {pipeline_class}\n\n"
        f'pipe = {pipeline_class}.from_pretrained("{repo_id or "path/to/this/folder"}")\n'
        f"{_PIPELINE_CALLS[pipeline_class]}"
    )
    return build_model_card(
        title,
        description,
        {
            "unet": "GlideUNet2DModel",
            "text_encoder": "GlideTextEncoder",
            "tokenizer": tokenizer,
            "scheduler": scheduler,
        },
        usage,
        ["glide", "diffusers-glide", "text-to-image", f"glide-{variant.model_type}"],
        license=license,
        pipeline_tag="text-to-image" if variant.text_to_image else "image-to-image",
        notes=LOADING_NOTE,
        limitations=limitations,
        reproduce_command=reproduce_command,
    )
