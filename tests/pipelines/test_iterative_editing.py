"""apply_edits: a sequence of (mask, prompt) inpainting edits, each on the previous result; sketches; errors."""

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import tiny_pipeline

from diffusers_glide import InpaintEdit, apply_edits


def start_image() -> PIL.Image.Image:
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))


def square_mask(top: int, left: int, side: int = 3) -> np.ndarray:
    mask = np.zeros((8, 8), np.uint8)
    mask[top : top + side, left : left + side] = 255
    return mask


@pytest.fixture
def pipe():
    return tiny_pipeline("base-inpaint")


def test_each_edit_starts_from_the_previous_result_and_keeps_everything_else(pipe):
    masks = [square_mask(0, 0), square_mask(4, 4), square_mask(1, 5)]
    edits = [
        InpaintEdit("a red circle", masks[0]),
        (masks[1], "a blue square"),
        {"prompt": "a green triangle", "mask_image": masks[2], "strength": 0.5},
    ]
    results = apply_edits(pipe, start_image(), edits, generator=torch.Generator().manual_seed(0))
    assert len(results) == 3 and all(r.size == (8, 8) and r.mode == "RGB" for r in results)
    arrays = [np.asarray(start_image())] + [np.asarray(r) for r in results]
    for k, mask in enumerate(masks):
        kept = mask == 0
        assert np.array_equal(arrays[k + 1][kept], arrays[k][kept]), f"edit {k + 1} changed kept pixels"
        assert not np.array_equal(arrays[k + 1][~kept], arrays[k][~kept]), f"edit {k + 1} repainted nothing"
    outside_all = np.logical_and.reduce([mask == 0 for mask in masks])
    assert np.array_equal(arrays[-1][outside_all], arrays[0][outside_all])

    # one seeded generator makes the sequence reproducible; each edit is the pipeline's own call
    again = apply_edits(pipe, start_image(), edits, generator=torch.Generator().manual_seed(0))
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(results, again, strict=True))
    generator = torch.Generator().manual_seed(0)
    first = pipe("a red circle", image=start_image(), mask_image=masks[0], generator=generator).images[0]
    assert np.array_equal(np.asarray(first), arrays[1])


def test_a_sketch_is_painted_into_the_mask_before_the_edit(pipe):
    mask = square_mask(2, 2, side=4)
    sketch = np.zeros((8, 8, 3), np.uint8)
    sketch[..., 0] = 255  # a red blob (only its pixels inside the mask count)
    hole = mask > 0

    def edited(sketch_image, strength):
        edit = InpaintEdit("a red square", mask, strength=strength, sketch=sketch_image)
        (result,) = apply_edits(pipe, start_image(), [edit], generator=torch.Generator().manual_seed(1))
        return np.asarray(result).astype(float)

    with_sketch = edited(PIL.Image.fromarray(sketch), 0.25)
    assert np.array_equal(with_sketch[~hole], np.asarray(start_image()).astype(float)[~hole])
    # one step of four from the sketch noised a little: the hole stays far nearer the sketch than without it
    near = np.abs(with_sketch[hole] - sketch[hole]).mean()
    without = np.abs(edited(None, 0.25)[hole] - sketch[hole]).mean()
    assert near < without / 2, (near, without)


def test_bad_edits_are_errors(pipe):
    image = start_image()
    with pytest.raises(ValueError, match="`edits` is empty"):
        apply_edits(pipe, image, [])
    with pytest.raises(TypeError, match="Each edit must be an InpaintEdit, a dict of its fields, or a"):
        apply_edits(pipe, image, ["a red circle"])
    with pytest.raises(ValueError, match=r"apply_edits sets \['output_type', 'strength'\] itself"):
        apply_edits(pipe, image, [(square_mask(0, 0), "a")], strength=0.5, output_type="np")
    with pytest.raises(ValueError, match=r"apply_edits sets \['num_images_per_prompt'\] itself"):
        apply_edits(pipe, image, [(square_mask(0, 0), "a")], num_images_per_prompt=2)
    with pytest.raises(ValueError, match="edit 2 of 2: `mask_image` 0 has nothing to repaint"):
        apply_edits(pipe, image, [(square_mask(0, 0), "a"), (np.zeros((8, 8), np.uint8), "b")])
    with pytest.raises(ValueError, match=r"edit 1 of 1: `strength` must be in \(0, 1\], got 0"):
        apply_edits(pipe, image, [(square_mask(0, 0), "a", 0.0)])
    with pytest.raises(ValueError, match="`image` must be a single image to edit, got 2"):
        apply_edits(pipe, torch.rand(2, 3, 8, 8), [(square_mask(0, 0), "a")])
    with pytest.raises(TypeError, match="`pipe` must be a GlideInpaintPipeline, got GlidePipeline"):
        apply_edits(tiny_pipeline("base"), image, [(square_mask(0, 0), "a")])
