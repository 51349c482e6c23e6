import pytest
import torch

from diffusers_glide.training.masks import random_free_form_masks, random_inpaint_masks, random_rectangle_masks


def test_rectangle_masks_repaint_one_rectangle():
    masks = random_rectangle_masks(16, 24, 20, torch.Generator().manual_seed(0))
    assert masks.shape == (16, 1, 24, 20)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    for mask in masks[:, 0]:
        repaint = mask == 0
        rows, cols = repaint.any(1).nonzero(), repaint.any(0).nonzero()
        assert rows.numel() and cols.numel()
        # the repainted pixels fill their bounding box exactly: a rectangle
        box = repaint[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert bool(box.all())
        assert 0.005 < repaint.float().mean() < 0.75


def test_free_form_masks_are_strokes():
    masks = random_free_form_masks(16, 32, 32, torch.Generator().manual_seed(1))
    assert masks.shape == (16, 1, 32, 32)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    fractions = (masks == 0).float().mean(dim=(1, 2, 3))
    assert bool((fractions > 0.01).all()) and bool((fractions < 0.95).all()), fractions


def test_mixed_masks_are_deterministic_and_mix_both_kinds():
    first = random_inpaint_masks(32, 16, 16, "mixed", torch.Generator().manual_seed(3))
    second = random_inpaint_masks(32, 16, 16, "mixed", torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    assert not torch.equal(first, random_inpaint_masks(32, 16, 16, "mixed", torch.Generator().manual_seed(4)))


def test_unknown_mask_type():
    with pytest.raises(ValueError, match="`mask_type` must be one of"):
        random_inpaint_masks(1, 8, 8, "circle")
