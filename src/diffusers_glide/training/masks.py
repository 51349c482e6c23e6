"""Random inpainting masks for training the inpainting variants, in GLIDE's convention (1 = keep, 0 = repaint)."""

from __future__ import annotations

import math

import torch

MASK_TYPES = ("rectangle", "free_form", "large", "mixed", "all")


def _rand(generator, *shape):
    return torch.rand(shape, generator=generator)


def random_rectangle_masks(batch_size: int, height: int, width: int, generator=None) -> torch.Tensor:
    """One axis-aligned rectangle to repaint per image, each side 10% to 70% of the image."""
    sizes = 0.1 + 0.6 * _rand(generator, batch_size, 2)  # (h, w) as fractions
    corners = _rand(generator, batch_size, 2) * (1 - sizes)
    return _rectangles(sizes, corners, height, width)


def _rectangles(sizes: torch.Tensor, corners: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Keep-masks repainting one rectangle per image; `sizes` and top-left `corners` are (batch, (y, x)) fractions."""
    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    inside_y = (ys[None] >= corners[:, :1]) & (ys[None] < corners[:, :1] + sizes[:, :1])
    inside_x = (xs[None] >= corners[:, 1:]) & (xs[None] < corners[:, 1:] + sizes[:, 1:])
    repaint = inside_y[:, :, None] & inside_x[:, None, :]
    return (~repaint).float()[:, None]


def random_free_form_masks(
    batch_size: int, height: int, width: int, generator=None, num_strokes: int = 3, segments_per_stroke: int = 4
) -> torch.Tensor:
    """Brush strokes to repaint: random walks of thick line segments (as in free-form inpainting datasets)."""
    num_segments = num_strokes * segments_per_stroke
    starts = _rand(generator, batch_size, num_strokes, 1, 2)
    angles = _rand(generator, batch_size, num_strokes, segments_per_stroke) * 2 * math.pi
    lengths = 0.1 + 0.25 * _rand(generator, batch_size, num_strokes, segments_per_stroke)
    steps = torch.stack([angles.cos(), angles.sin()], dim=-1) * lengths[..., None]
    points = torch.cat([starts, starts + steps.cumsum(dim=2)], dim=2).clamp(0, 1)  # (B, strokes, S + 1, 2)
    seg_a = points[:, :, :-1].reshape(batch_size, num_segments, 1, 2)
    seg_b = points[:, :, 1:].reshape(batch_size, num_segments, 1, 2)
    widths = (0.04 + 0.06 * _rand(generator, batch_size, num_strokes)).repeat_interleave(segments_per_stroke, dim=1)

    ys = (torch.arange(height) + 0.5) / height
    xs = (torch.arange(width) + 0.5) / width
    pixels = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1).view(1, 1, -1, 2)  # (x, y)
    # distance of every pixel to every segment
    direction = seg_b - seg_a
    t = ((pixels - seg_a) * direction).sum(-1) / direction.square().sum(-1).clamp(min=1e-12)
    closest = seg_a + t.clamp(0, 1)[..., None] * direction
    distance = (pixels - closest).norm(dim=-1)  # (B, segments, H*W)
    repaint = (distance <= widths[..., None]).any(dim=1)
    return (~repaint).float().view(batch_size, 1, height, width)


def random_large_masks(batch_size: int, height: int, width: int, generator=None) -> torch.Tensor:
    """One large region to repaint per image, a third each: a full-width strip, a full-height strip (each 30% to
    75% of the image across), or a rectangle whose sides are 50% to 87% of the image (at most ~3/4 of it)."""
    kinds = torch.randint(3, (batch_size,), generator=generator)
    strip = 0.3 + 0.45 * _rand(generator, batch_size)
    box = 0.5 + 0.37 * _rand(generator, batch_size, 2)
    full = torch.ones(batch_size)
    sizes = torch.stack(  # (h, w) as fractions
        [
            torch.where(kinds == 0, strip, torch.where(kinds == 1, full, box[:, 0])),
            torch.where(kinds == 0, full, torch.where(kinds == 1, strip, box[:, 1])),
        ],
        dim=1,
    )
    return _rectangles(sizes, _rand(generator, batch_size, 2) * (1 - sizes), height, width)


def random_inpaint_masks(
    batch_size: int, height: int, width: int, mask_type: str = "mixed", generator: torch.Generator | None = None
) -> torch.Tensor:
    """
    Random keep-masks `(batch, 1, height, width)` with 1 = keep and 0 = repaint.

    `mask_type` is `"rectangle"`, `"free_form"`, `"large"` ([`random_large_masks`]), `"mixed"` (each image draws a
    rectangle or brush strokes, half and half) or `"all"` (each image draws one of the three kinds, a third each).
    """
    if mask_type not in MASK_TYPES:
        raise ValueError(f"`mask_type` must be one of {MASK_TYPES}, got {mask_type!r}.")
    if mask_type == "rectangle":
        return random_rectangle_masks(batch_size, height, width, generator)
    if mask_type == "free_form":
        return random_free_form_masks(batch_size, height, width, generator)
    if mask_type == "large":
        return random_large_masks(batch_size, height, width, generator)
    if mask_type == "all":
        kinds = [
            random_rectangle_masks(batch_size, height, width, generator),
            random_free_form_masks(batch_size, height, width, generator),
            random_large_masks(batch_size, height, width, generator),
        ]
        choice = torch.randint(3, (batch_size,), generator=generator)
        return torch.stack(kinds)[choice, torch.arange(batch_size)]
    rectangles = random_rectangle_masks(batch_size, height, width, generator)
    strokes = random_free_form_masks(batch_size, height, width, generator)
    use_rectangle = (_rand(generator, batch_size) < 0.5).view(-1, 1, 1, 1)
    return torch.where(use_rectangle, rectangles, strokes)
