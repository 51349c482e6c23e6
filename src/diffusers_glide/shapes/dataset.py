"""A procedural captioned dataset: one coloured shape on a plain coloured background.

Every image is drawn in code from its index (no downloads, no files), so the dataset is infinite, exactly
reproducible and its captions are ground truth that [`score_image`](scoring.py) can check from pixels.
Captions read "a red circle on a blue background" or, for half of the images, name the position too:
"a red circle on a blue background on the left".

Some (colour, shape, background) combinations are held out of training ([`HELD_OUT_COMBINATIONS`]) so the
evaluation asks for scenes the model has never seen, only their parts.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# Saturated, well separated colours so that a colour can be recovered from a pixel by nearest neighbour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 215, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
# position phrase -> centre of the shape as fractions of (x, y)
POSITIONS: dict[str, tuple[float, float]] = {
    "in the middle": (0.5, 0.5),
    "on the left": (0.27, 0.5),
    "on the right": (0.73, 0.5),
    "at the top": (0.5, 0.27),
    "at the bottom": (0.5, 0.73),
}

# (shape colour, shape, background colour) never drawn by the training split. Every colour, shape and
# background, and every pair of them, still occurs in training with other partners.
HELD_OUT_COMBINATIONS: tuple[tuple[str, str, str], ...] = (
    ("red", "circle", "blue"),
    ("green", "square", "yellow"),
    ("blue", "triangle", "white"),
    ("yellow", "circle", "black"),
    ("white", "square", "red"),
    ("black", "triangle", "green"),
    ("red", "triangle", "yellow"),
    ("green", "circle", "white"),
    ("blue", "square", "black"),
    ("yellow", "triangle", "red"),
    ("white", "circle", "green"),
    ("black", "square", "blue"),
)

_SUPERSAMPLING = 4  # drawn at 4x and averaged down, for anti-aliased edges


@dataclass(frozen=True)
class ShapeScene:
    """What one image shows; `position` is None when the caption does not name it (the shape is still placed)."""

    color: str
    shape: str
    background: str
    position: str | None
    center: tuple[float, float]  # (x, y) as fractions of the image size
    radius: float  # as a fraction of the image size

    @property
    def caption(self) -> str:
        # The optional position goes last, so every other word has a fixed place in the caption: a tiny text
        # encoder then tells the shape colour (word 1) from the background colour (word 5) by position alone.
        where = f" {self.position}" if self.position else ""
        return f"a {self.color} {self.shape} on a {self.background} background{where}"


SCENE_RADIUS = 0.18  # the radius of a scene made from a caption (the middle of the training radii, 0.16 .. 0.21)


def scene_from_caption(caption: str) -> ShapeScene:
    """
    The scene a caption describes: the inverse of [`ShapeScene.caption`].

    `caption` reads "a {colour} {shape} on a {background} background", optionally followed by one of the position
    phrases of [`POSITIONS`] ("a red circle on a blue background on the left"); case and surrounding whitespace are
    ignored. The scene's shape is centred on the named position (the middle when none is named), with radius
    `SCENE_RADIUS`; `position` is the phrase, or None when the caption names none.

    Raises:
        ValueError: `caption` does not have that form, or names a colour, shape or position the dataset lacks.
    """
    words = caption.strip().lower().split(" ")
    if len(words) >= 7 and words[0] == "a" and words[3:5] == ["on", "a"] and words[6] == "background":
        color, shape, background, phrase = words[1], words[2], words[5], " ".join(words[7:])
        if color in COLORS and shape in SHAPES and background in COLORS and (not phrase or phrase in POSITIONS):
            position = phrase or None
            center = POSITIONS[position or "in the middle"]
            return ShapeScene(color, shape, background, position, center, SCENE_RADIUS)
    raise ValueError(
        f"Cannot read the caption {caption!r}: a shapes caption reads 'a {{colour}} {{shape}} on a {{background}} "
        f"background[ {{position}}]', with colours {list(COLORS)}, shapes {list(SHAPES)} and positions "
        f"{list(POSITIONS)}."
    )


def caption_vocabulary() -> list[str]:
    """Every word a caption can contain, in a fixed order (for a word-level tokenizer)."""
    words = ["a", "on", "background"] + list(COLORS) + list(SHAPES)
    for phrase in POSITIONS:
        words += [w for w in phrase.split() if w not in words]
    return words


def _all_combinations() -> list[tuple[str, str, str]]:
    return [(c, s, b) for c in COLORS for s in SHAPES for b in COLORS if b != c]


def combinations_for_split(split: str) -> list[tuple[str, str, str]]:
    """The (colour, shape, background) triples of `"train"`, `"held_out"` or `"all"`."""
    if split == "train":
        return [combo for combo in _all_combinations() if combo not in HELD_OUT_COMBINATIONS]
    if split == "held_out":
        return list(HELD_OUT_COMBINATIONS)
    if split == "all":
        return _all_combinations()
    raise ValueError(f"`split` must be 'train', 'held_out' or 'all', got {split!r}.")


def sample_scene(generator: torch.Generator, combinations: list[tuple[str, str, str]], name_position_prob=0.5):
    """Draw a random scene: a combination, a position (named in the caption with `name_position_prob`), jitter."""

    def uniform(low, high):
        return low + (high - low) * torch.rand((), generator=generator).item()

    def choice(options):
        return options[int(torch.randint(len(options), (), generator=generator))]

    color, shape, background = choice(combinations)
    position = choice(list(POSITIONS))
    cx, cy = POSITIONS[position]
    center = (cx + uniform(-0.04, 0.04), cy + uniform(-0.04, 0.04))
    radius = uniform(0.16, 0.21)
    named = torch.rand((), generator=generator).item() < name_position_prob
    return ShapeScene(color, shape, background, position if named else None, center, radius)


def shape_mask(scene: ShapeScene, resolution: int) -> torch.Tensor:
    """Coverage of the shape in [0, 1], shape `(resolution, resolution)`, anti-aliased by supersampling."""
    size = resolution * _SUPERSAMPLING
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cx, cy = scene.center
    r = scene.radius
    if scene.shape == "circle":
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
    elif scene.shape == "square":
        half = 0.85 * r  # about the area of the circle
        inside = ((x - cx).abs() <= half) & ((y - cy).abs() <= half)
    elif scene.shape == "triangle":
        # upright isosceles triangle inscribed in the circle's bounding box
        top, bottom = cy - r, cy + r
        inside = (y >= top) & (y <= bottom) & ((x - cx).abs() <= (y - top) / 2)
    else:
        raise ValueError(f"Unknown shape {scene.shape!r}; expected one of {SHAPES}.")
    return F.avg_pool2d(inside.float()[None, None], _SUPERSAMPLING)[0, 0]


def render_scene(scene: ShapeScene, resolution: int) -> torch.Tensor:
    """The image of a scene as float32 `(3, resolution, resolution)` in [0, 1]."""
    coverage = shape_mask(scene, resolution)[None]
    foreground = torch.tensor(COLORS[scene.color], dtype=torch.float32).view(3, 1, 1) / 255
    background = torch.tensor(COLORS[scene.background], dtype=torch.float32).view(3, 1, 1) / 255
    return coverage * foreground + (1 - coverage) * background


class ShapesDataset(torch.utils.data.Dataset):
    """
    Captioned images of coloured shapes, generated on the fly; item `i` is always the same image.

    Args:
        num_images (`int`): Length of the dataset (any size: images are drawn, not stored).
        resolution (`int`, *optional*, defaults to 32): Height and width of the images.
        split (`str`, *optional*, defaults to `"train"`): `"train"` never draws [`HELD_OUT_COMBINATIONS`];
            `"held_out"` draws only those; `"all"` draws everything.
        seed (`int`, *optional*, defaults to 0): Changes every image.
        name_position_prob (`float`, *optional*, defaults to 0.5): How often the caption names the position.

    Items are dicts with `"pixel_values"` (float32 `(3, H, W)` in [-1, 1]), `"caption"` and `"scene"`.
    """

    def __init__(
        self,
        num_images: int,
        resolution: int = 32,
        split: str = "train",
        seed: int = 0,
        name_position_prob: float = 0.5,
    ):
        if num_images < 1:
            raise ValueError(f"`num_images` must be positive, got {num_images}.")
        if resolution < 8:
            raise ValueError(f"`resolution` must be at least 8 pixels, got {resolution}.")
        self.num_images = num_images
        self.resolution = resolution
        self.combinations = combinations_for_split(split)
        self.seed = seed
        self.name_position_prob = name_position_prob

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> ShapeScene:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} is out of range for a dataset of {self.num_images} images.")
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return sample_scene(generator, self.combinations, self.name_position_prob)

    def __getitem__(self, index: int) -> dict:
        scene = self.scene(index)
        image = render_scene(scene, self.resolution)
        return {"pixel_values": image * 2 - 1, "caption": scene.caption, "scene": scene}
