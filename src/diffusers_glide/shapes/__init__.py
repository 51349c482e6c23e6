"""The procedural shapes dataset the embedded models are trained on, and the pixel-level evaluation of every stage."""

from .dataset import (
    COLORS,
    HELD_OUT_COMBINATIONS,
    POSITIONS,
    SHAPES,
    ShapeScene,
    ShapesDataset,
    caption_vocabulary,
    combinations_for_split,
    render_scene,
    scene_from_caption,
    shape_mask,
)

__all__ = [
    "COLORS",
    "HELD_OUT_COMBINATIONS",
    "POSITIONS",
    "SHAPES",
    "ShapeScene",
    "ShapesDataset",
    "caption_vocabulary",
    "combinations_for_split",
    "render_scene",
    "scene_from_caption",
    "shape_mask",
]
