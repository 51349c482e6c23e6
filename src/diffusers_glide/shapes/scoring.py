"""Score generated shape images against their captions from the pixels alone.

For each image the scorer recovers the background colour (median of the border), the shape colour (median of
the pixels far from the background), the shape (how much of its bounding box the shape fills: ~1 for a
square, ~0.79 for a circle, ~0.5 for a triangle) and, when the caption names it, the position (nearest
position to the shape's centroid) ([`read_image`]). A sample's score is the fraction of its attributes that match
the caption ([`score_image`]); [`summarize`] turns a run's scores into an [`EvaluationResult`].

[`evaluation_scenes`] are the captions every evaluation asks for (the held-out combinations by default), and
[`evaluate_pipeline`] scores a text-to-image pipeline on them. The other stages are evaluated in
[`stage_evaluation`](stage_evaluation.py) and [`editing_evaluation`](editing_evaluation.py); the command line
is [`evaluate`](evaluate.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch

from .dataset import COLORS, HELD_OUT_COMBINATIONS, POSITIONS, ShapeScene, combinations_for_split

_PALETTE_NAMES = list(COLORS)
_PALETTE = np.array([COLORS[name] for name in _PALETTE_NAMES], dtype=np.float32) / 255
_FOREGROUND_DISTANCE = 0.5  # RGB distance (in [0, 1] units) from the background for a pixel to be "shape"
_MIN_SHAPE_FRACTION = 0.02  # fewer shape pixels than this: no shape was drawn
# fill ratio of the bounding box: square ~1.0, circle ~pi/4, triangle ~0.5
_SQUARE_MIN_FILL, _CIRCLE_MIN_FILL = 0.89, 0.64


@dataclass
class ShapeReading:
    """What the scorer sees in an image (None: no shape found)."""

    background: str
    color: str | None
    shape: str | None
    position: str | None


def _nearest_color(rgb: np.ndarray) -> str:
    return _PALETTE_NAMES[int(np.argmin(np.linalg.norm(_PALETTE - rgb, axis=1)))]


def _to_array(image) -> np.ndarray:
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    array = np.asarray(image, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image of shape (H, W, 3), got {array.shape}.")
    return array


def _background_rgb(pixels: np.ndarray) -> np.ndarray:
    border = np.concatenate([pixels[0], pixels[-1], pixels[1:-1, 0], pixels[1:-1, -1]])
    return np.median(border, axis=0)


def foreground_mask(image) -> np.ndarray:
    """The pixels the scorer counts as the shape: bool (H, W), far (in RGB) from the median colour of the border."""
    pixels = _to_array(image)
    return np.linalg.norm(pixels - _background_rgb(pixels), axis=-1) > _FOREGROUND_DISTANCE


def read_image(image) -> ShapeReading:
    """Recover background colour, shape colour, shape and position from an image (PIL or (H, W, 3) in [0, 1])."""
    pixels = _to_array(image)
    height, width, _ = pixels.shape
    background = _nearest_color(_background_rgb(pixels))
    foreground = foreground_mask(pixels)
    if foreground.mean() < _MIN_SHAPE_FRACTION:
        return ShapeReading(background, None, None, None)
    color = _nearest_color(np.median(pixels[foreground], axis=0))

    ys, xs = np.nonzero(foreground)
    box_area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    fill = foreground.sum() / box_area
    shape = "square" if fill >= _SQUARE_MIN_FILL else "circle" if fill >= _CIRCLE_MIN_FILL else "triangle"

    # centroid of the bounding box (a triangle's mass centre sits low; its box centre is the drawn centre)
    center = np.array([(xs.min() + xs.max() + 1) / 2 / width, (ys.min() + ys.max() + 1) / 2 / height])
    names = list(POSITIONS)
    position = names[int(np.argmin([np.linalg.norm(center - np.array(POSITIONS[n])) for n in names]))]
    return ShapeReading(background, color, shape, position)


def score_image(image, scene: ShapeScene) -> dict[str, bool]:
    """Which attributes of `scene`'s caption the image shows (position only when the caption names it)."""
    reading = read_image(image)
    checks = {
        "background": reading.background == scene.background,
        "color": reading.color == scene.color,
        "shape": reading.shape == scene.shape,
    }
    if scene.position is not None:
        checks["position"] = reading.position == scene.position
    return checks


def score_images(images_u8, scenes: list[ShapeScene], num_samples: int) -> list[dict[str, bool]]:
    """[`score_image`] of each uint8 (H, W, 3) image of a case-major batch: image i shows `scenes[i // num_samples]`."""
    return [score_image(image / 255, scenes[i // num_samples]) for i, image in enumerate(images_u8)]


def evaluation_scenes(split: str = "held_out") -> list[ShapeScene]:
    """
    Two captions per combination, one without a position and one naming a position.

    `split="held_out"`: the 12 combinations never drawn in training. `split="train"`: 12 combinations seen in
    training (every 6th), to tell memorisation from generalisation.
    """
    if split == "held_out":
        combinations = list(HELD_OUT_COMBINATIONS)
    elif split == "train":
        combinations = combinations_for_split("train")[::6][: len(HELD_OUT_COMBINATIONS)]
    else:
        raise ValueError(f"`split` must be 'held_out' or 'train', got {split!r}.")
    positions = list(POSITIONS)
    scenes = []
    for index, (color, shape, background) in enumerate(combinations):
        for position in (None, positions[index % len(positions)]):
            center = POSITIONS[position or "in the middle"]
            scenes.append(ShapeScene(color, shape, background, position, center, 0.18))
    return scenes


@dataclass
class EvaluationResult:
    name: str
    guidance_scale: float
    conditional: bool
    accuracy: float  # mean over samples of the fraction of attributes right
    all_correct: float  # fraction of samples with every attribute right
    per_attribute: dict[str, float]
    num_samples: int


def summarize(name, guidance_scale, conditional, checks: list[dict[str, bool]]) -> EvaluationResult:
    attributes = sorted({key for check in checks for key in check})
    per_attribute = {key: float(np.mean([c[key] for c in checks if key in c])) for key in attributes}
    return EvaluationResult(
        name=name,
        guidance_scale=guidance_scale,
        conditional=conditional,
        accuracy=float(np.mean([np.mean(list(c.values())) for c in checks])),
        all_correct=float(np.mean([all(c.values()) for c in checks])),
        per_attribute=per_attribute,
        num_samples=len(checks),
    )


@torch.no_grad()
def evaluate_pipeline(
    pipeline,
    guidance_scales=(3.0,),
    num_samples: int = 2,
    split: str = "held_out",
    num_inference_steps: int | None = None,
    seed: int = 0,
    include_unconditional: bool = True,
    return_images: bool = False,
):
    """
    Generate `num_samples` images for each caption of [`evaluation_scenes`] (`split`) and score them.

    Returns a list of [`EvaluationResult`] — one per guidance scale (scale 1 is the conditional model without
    guidance) and, with `include_unconditional`, one for the empty prompt — and, with `return_images`, the
    images of each run.
    """
    scenes = evaluation_scenes(split)
    prompts = [scene.caption for scene in scenes]
    runs = [
        (f"guidance {scale:g}" if scale > 1 else "no guidance (scale 1)", scale, True) for scale in guidance_scales
    ]
    if include_unconditional:
        runs.append(("unconditional (empty prompt)", 1.0, False))
    results, images_per_run = [], []
    for name, scale, conditional in runs:
        generator = torch.Generator().manual_seed(seed)
        images = pipeline(
            prompt=prompts if conditional else [""] * len(prompts),
            num_images_per_prompt=num_samples,
            guidance_scale=scale,
            num_inference_steps=num_inference_steps,
            generator=generator,
        ).images
        checks = [score_image(image, scenes[i // num_samples]) for i, image in enumerate(images)]
        results.append(summarize(name, scale, conditional, checks))
        images_per_run.append(images)
    return (results, images_per_run) if return_images else results


def results_table(results: list[EvaluationResult]) -> str:
    attributes = sorted({key for r in results for key in r.per_attribute})
    header = "| sampling | score | all correct | " + " | ".join(attributes) + " | samples |"
    lines = [header, "|" + "---|" * (len(attributes) + 4)]
    for r in results:
        cells = [f"{r.per_attribute.get(a, float('nan')):.2f}" for a in attributes]
        lines.append(
            f"| {r.name} | {r.accuracy:.3f} | {r.all_correct:.3f} | " + " | ".join(cells) + f" | {r.num_samples} |"
        )
    return "\n".join(lines)
