import pytest
import torch

from diffusers_glide.training.masks import (
    random_free_form_masks,
    random_inpaint_masks,
    random_large_masks,
    random_rectangle_masks,
)


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


def _repainted_box(mask: torch.Tensor) -> tuple[int, int, bool]:
    """(rows, columns) spanned by the repainted pixels of one (H, W) keep-mask, and whether they fill that box."""
    repaint = mask == 0
    rows, cols = repaint.any(1).nonzero(), repaint.any(0).nonzero()
    box = repaint[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return rows.numel(), cols.numel(), bool(box.all())


def test_large_masks_are_strips_or_big_rectangles():
    masks = random_large_masks(60, 32, 32, torch.Generator().manual_seed(0))
    assert masks.shape == (60, 1, 32, 32)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    kinds = {"full width": 0, "full height": 0, "rectangle": 0}
    for mask in masks[:, 0]:
        rows, cols, filled = _repainted_box(mask)
        assert filled  # one rectangle
        fraction = float((mask == 0).float().mean())
        assert 0.25 <= fraction <= 0.76, fraction  # large, and never more than about 3/4
        if cols == 32:
            kinds["full width"] += 1
            assert 0.28 * 32 <= rows <= 0.76 * 32
        elif rows == 32:
            kinds["full height"] += 1
            assert 0.28 * 32 <= cols <= 0.76 * 32
        else:
            kinds["rectangle"] += 1
            assert rows >= 0.45 * 32 and cols >= 0.45 * 32
    assert min(kinds.values()) >= 10, kinds  # each kind about a third of the time


def test_all_masks_draw_each_kind():
    generator = torch.Generator().manual_seed(5)
    masks = random_inpaint_masks(90, 32, 32, "all", generator)
    assert torch.equal(masks, random_inpaint_masks(90, 32, 32, "all", torch.Generator().manual_seed(5)))
    strokes = sum(not _repainted_box(mask)[2] for mask in masks[:, 0])  # brush strokes do not fill their box
    full = sum(1 for mask in masks[:, 0] if {32} & set(_repainted_box(mask)[:2]))  # strips span the image
    assert 15 <= strokes <= 45 and full >= 10, (strokes, full)
