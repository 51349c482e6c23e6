"""Iterative editing, as GLIDE's paper chains edits: a sequence of (mask, prompt) inpainting edits applied to one
image, each starting from the previous result, optionally from a colour sketch painted into its mask."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import PIL.Image
import torch

from .pipeline_glide_base import PipelineImageInput
from .pipeline_glide_inpaint import GlideInpaintPipeline


@dataclass
class InpaintEdit:
    r"""
    One edit of [`apply_edits`].

    Args:
        prompt (`str`): What to paint in the masked region.
        mask_image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`):
            White / 1 = repaint, black / 0 = keep (as [`GlideInpaintPipeline`] reads it).
        strength (`float`, *optional*, defaults to 1.0):
            [`GlideInpaintPipeline`]'s `strength`: 1 repaints the region from noise; below 1 starts from the current
            image there (or from `sketch`), noised to that point of the schedule.
        sketch (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`, *optional*):
            An image of the same aspect ratio whose pixels INSIDE the mask are painted into the current image before
            the edit (e.g. a rough colour blob); pixels outside the mask are ignored. Use it with `strength` < 1.
    """

    prompt: str
    mask_image: Any
    strength: float = 1.0
    sketch: Any = None


def _as_edit(edit) -> InpaintEdit:
    if isinstance(edit, InpaintEdit):
        return edit
    if isinstance(edit, dict):
        return InpaintEdit(**edit)
    if isinstance(edit, (tuple, list)) and len(edit) in (2, 3):
        mask_image, prompt, *strength = edit
        return InpaintEdit(prompt=prompt, mask_image=mask_image, strength=strength[0] if strength else 1.0)
    raise TypeError(
        "Each edit must be an InpaintEdit, a dict of its fields, or a (mask_image, prompt[, strength]) tuple; got "
        f"{type(edit).__name__}."
    )


def apply_edits(
    pipe: GlideInpaintPipeline,
    image: PipelineImageInput,
    edits: Sequence[InpaintEdit | tuple | dict],
    generator: torch.Generator | None = None,
    **call_kwargs,
) -> list[PIL.Image.Image]:
    r"""
    Apply `edits` one after another to `image` with an inpainting pipeline: edit `k` inpaints its mask in the
    result of edit `k - 1`. Returns the image after each edit (the last one is the final result), at the model's
    size.

    Every edit keeps the pixels outside its mask exactly (8-bit), so the pixels outside EVERY mask are exactly those
    of `image` resized to the model's size (exactly `image`'s own when it has that size already). The edits use one
    `generator` in turn, so a seeded generator makes the whole sequence reproducible.

    Args:
        pipe ([`GlideInpaintPipeline`]): The inpainting pipeline (e.g. over the embedded `base-inpaint` model).
        image (`PIL.Image.Image`, `np.ndarray` or `torch.Tensor`): The single starting image.
        edits (sequence of [`InpaintEdit`], `(mask_image, prompt[, strength])` tuples or dicts): At least one.
        generator (`torch.Generator`, *optional*): The noise source of all edits.
        call_kwargs: Passed to every pipeline call (`num_inference_steps`, `guidance_scale`, `negative_prompt`, ...);
            not the per-edit or per-image arguments.
    """
    if not isinstance(pipe, GlideInpaintPipeline):
        raise TypeError(f"`pipe` must be a GlideInpaintPipeline, got {type(pipe).__name__}.")
    reserved = sorted(set(call_kwargs) & {"prompt", "image", "mask_image", "strength", "output_type", "return_dict"})
    reserved += ["num_images_per_prompt"] if call_kwargs.get("num_images_per_prompt", 1) != 1 else []
    if reserved:
        raise ValueError(
            f"apply_edits sets {reserved} itself (per edit, one image, PIL out); give the prompt, mask and strength "
            "in each edit."
        )
    edits = [_as_edit(edit) for edit in edits]
    if not edits:
        raise ValueError("`edits` is empty: give at least one (mask_image, prompt) edit.")
    if isinstance(edits[0].prompt, (list, tuple)):
        raise ValueError("Each edit takes one prompt (a string): it edits a single image.")

    size = pipe.unet.config.sample_size
    current, _ = pipe.image_processor.read_images(image, "image", size=size)
    if current.shape[0] != 1:
        raise ValueError(f"`image` must be a single image to edit, got {current.shape[0]}.")
    results = []
    for number, edit in enumerate(edits, start=1):
        start = current
        if edit.sketch is not None:
            sketch, _ = pipe.image_processor.read_images(edit.sketch, f"sketch of edit {number}", size=size)
            repaint, _ = pipe.image_processor.read_masks(edit.mask_image, f"mask_image of edit {number}", size)
            start = torch.where(repaint.bool(), sketch[:1], current)
        try:
            result = pipe(
                edit.prompt,
                image=(start + 1) / 2,
                mask_image=edit.mask_image,
                strength=edit.strength,
                generator=generator,
                output_type="pil",
                **call_kwargs,
            ).images[0]
        except ValueError as error:  # name the edit whose mask / prompt / strength was refused
            raise ValueError(f"edit {number} of {len(edits)}: {error}") from error
        results.append(result)
        current, _ = pipe.image_processor.read_images(result, "image", size=size)
    return results
