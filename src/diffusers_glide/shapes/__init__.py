"""The procedural shapes dataset the embedded default model is trained on, and its pixel-level evaluation."""

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
]
