"""The model cards (README.md) of the folders this package writes: converted checkpoints, the noised CLIP and
trained models. One layout for all: metadata, title, description, components, usage, notes, how to reproduce."""

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
LOADING_NOTE = (
    "Load it with the diffusers-glide class above. diffusers' generic `DiffusionPipeline.from_pretrained`\n"
    "cannot load this repo, with or without `trust_remote_code=True`: it only finds pipeline and component\n"
    "classes that are part of diffusers / transformers or shipped as code inside the repo."
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
    reproduce_command: str | None = None,
) -> ModelCard:
    """
    A model card: YAML metadata (library diffusers, `tags`, optional license / pipeline tag), `# title`, the
    description, the components as `name` (what), a Python `usage` snippet after an install comment, optional notes,
    and optionally the shell command that reproduces the folder.
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
        reproduce_command=reproduce_command,
    )
