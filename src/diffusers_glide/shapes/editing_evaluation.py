"""Evaluate GLIDE's editing on the shapes data: image-to-image (SDEdit) and sketch-guided inpainting, by strength.

- [`evaluate_img2img`] (`base` model, [`GlideImg2ImgPipeline`]): each scene of [`evaluation_scenes`] is rendered
  with its two colours swapped ([`recolored_scene`]: "a blue circle on a red background" for "a red circle on a
  blue background") and turned towards the scene's own caption at each strength. Reported per strength: `colors`
  (fraction of samples whose shape colour AND background colour are the caption's), `place_kept` (fraction whose
  shape, as the scorer segments it, overlaps the input's shape with IoU >= 0.5), the mean `iou` and `distance`
  (mean absolute difference from the input, in 1/255), next to the scorer's score against the caption.
- [`evaluate_sketch_inpainting`] (`base-inpaint` model, [`GlideInpaintPipeline`] `strength`): each inpainting edit of
  [`inpainting_cases`] (rectangle masks) gets a sketch painted into its mask ([`sketch_cases`]): the background
  colour with a solid blob, in the target's colour, of the shape that is neither the old nor the target shape. The
  caption names the target. Reported per strength: `shape_and_color` (fraction of samples showing the target's
  shape in the sketch's colour) and `kept_exact`; strength 1 ignores the sketch (plain inpainting).

As in [`stage_evaluation`](stage_evaluation.py): `limit`, `batch_size`, `seed`, one generator per image, images
compared and scored as uint8.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .dataset import SHAPES, ShapeScene, render_scene, shape_mask
from .scoring import evaluation_scenes, foreground_mask, score_images, summarize
from .stage_evaluation import (
    StageResult,
    check_variant,
    generate_images,
    inpainting_cases,
    kept_pixels,
    quantize,
    to_hwc,
    to_uint8,
)

DEFAULT_STRENGTHS = (0.3, 0.5, 0.7, 0.85, 1.0)
DEFAULT_SKETCH_STRENGTHS = (0.5, 0.7, 0.85, 1.0)
_PLACE_IOU = 0.5  # a shape overlapping the input's by at least this IoU is "in the same place"


@dataclass
class _Sweep:
    """One pipeline call per strength over the same cases, scored against `targets` (one per case)."""

    pipeline: Any
    per_case: dict
    targets: list[ShapeScene]
    guidance_scale: float
    num_samples: int
    seed: int
    batch_size: int | None
    num_inference_steps: int | None

    def run(self, strength: float, name: str, measures: Callable[[np.ndarray, int], dict]) -> StageResult:
        images = generate_images(
            self.pipeline,
            self.per_case,
            len(self.targets),
            self.num_samples,
            self.seed,
            self.batch_size,
            strength=strength,
            guidance_scale=self.guidance_scale,
            num_inference_steps=self.num_inference_steps,
        )
        checks = score_images(images, self.targets, self.num_samples)
        result = summarize(name, self.guidance_scale, True, checks)
        return StageResult(result, {"strength": strength, **measures(images, self.num_samples)})


def recolored_scene(scene: ShapeScene) -> ShapeScene:
    """The same shape, place and size with the shape colour and the background colour swapped."""
    return dataclasses.replace(scene, color=scene.background, background=scene.color)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@torch.no_grad()
def evaluate_img2img(
    pipeline,
    strengths: Sequence[float] = DEFAULT_STRENGTHS,
    guidance_scale: float = 3.0,
    num_samples: int = 1,
    split: str = "held_out",
    seed: int = 0,
    num_inference_steps: int | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
) -> list[StageResult]:
    """
    Turn each recoloured scene ([`recolored_scene`]) towards its scene's caption with an image-to-image pipeline
    ([`GlideImg2ImgPipeline`] over a `base` model) at every strength; see the module docstring for the measures.
    A first row scores the unchanged inputs against the captions (what strength 0 would give).
    """
    check_variant(pipeline, "base", "evaluate_img2img")
    size = pipeline.unet.config.sample_size
    scenes = evaluation_scenes(split)[:limit]
    sources = [recolored_scene(scene) for scene in scenes]
    inputs = torch.stack([quantize(render_scene(source, size)) for source in sources])
    input_u8 = to_uint8(inputs.permute(0, 2, 3, 1))
    places = [shape_mask(source, size).numpy() >= 0.5 for source in sources]

    def measures(images_u8: np.ndarray, samples: int) -> dict[str, float]:
        ious, colors, distances = [], [], []
        for i, image in enumerate(images_u8):
            case = i // samples
            reading = score_images(image[None], [scenes[case]], 1)[0]
            colors.append(reading["color"] and reading["background"])
            ious.append(_iou(foreground_mask(image / 255), places[case]))
            distances.append(np.abs(image.astype(np.int16) - input_u8[case].astype(np.int16)).mean())
        return {
            "colors": float(np.mean(colors)),
            "place_kept": float(np.mean(np.array(ious) >= _PLACE_IOU)),
            "iou": float(np.mean(ious)),
            "distance": float(np.mean(distances)),
        }

    unchanged = summarize("unchanged input (strength 0)", 1.0, False, score_images(input_u8, scenes, 1))
    results = [StageResult(unchanged, {"strength": 0.0, **measures(input_u8, 1)})]
    per_case = {"prompt": [scene.caption for scene in scenes], "image": inputs}
    sweep = _Sweep(pipeline, per_case, scenes, guidance_scale, num_samples, seed, batch_size, num_inference_steps)
    return results + [sweep.run(strength, f"strength {strength:g}", measures) for strength in strengths]


@dataclass(frozen=True)
class SketchCase:
    """An inpainting edit with a sketch: `image` holds the sketch inside `mask` (1 = repaint)."""

    original: ShapeScene
    target: ShapeScene
    image: torch.Tensor  # float32 (3, H, W) in [0, 1]: the original outside the mask, the sketch inside
    mask: torch.Tensor  # float32 (H, W)
    caption: str
    sketch_shape: str  # the blob's shape: neither the original's nor the target's


def sketch_cases(size: int, split: str = "held_out", seed: int = 0, limit: int | None = None) -> list[SketchCase]:
    """The rectangle-mask edits of [`inpainting_cases`], with the sketch painted into each mask: the background
    colour, and a solid blob of the target's colour, place and size in the third shape."""
    cases = []
    for case in inpainting_cases(size, "rectangle", split, seed, limit):
        third = next(shape for shape in SHAPES if shape not in (case.original.shape, case.target.shape))
        sketch = quantize(render_scene(dataclasses.replace(case.target, shape=third), size))
        image = torch.where(case.mask.bool(), sketch, case.image)
        cases.append(SketchCase(case.original, case.target, image, case.mask, case.caption, third))
    return cases


@torch.no_grad()
def evaluate_sketch_inpainting(
    pipeline,
    strengths: Sequence[float] = DEFAULT_SKETCH_STRENGTHS,
    guidance_scale: float = 5.0,
    num_samples: int = 1,
    split: str = "held_out",
    seed: int = 0,
    num_inference_steps: int | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
) -> list[StageResult]:
    """
    Repaint each sketched edit of [`sketch_cases`] from its caption with a `base-inpaint` pipeline
    ([`GlideInpaintPipeline`]) at every strength; see the module docstring for the measures. A first row scores the
    sketches themselves against the targets (their blob has the right colour and place but the wrong shape).
    """
    check_variant(pipeline, "base-inpaint", "evaluate_sketch_inpainting")
    cases = sketch_cases(pipeline.unet.config.sample_size, split, seed, limit)
    targets = [case.target for case in cases]

    def measures(images_u8: np.ndarray, samples: int) -> dict[str, float]:
        checks = score_images(images_u8, targets, samples)
        both = float(np.mean([check["shape"] and check["color"] for check in checks]))
        return {"shape_and_color": both, **kept_pixels(images_u8, cases, samples)}

    sketches = to_uint8(np.stack([to_hwc(case.image) for case in cases]))
    baseline = summarize("the sketches (no model)", 1.0, False, score_images(sketches, targets, 1))
    results = [StageResult(baseline, {"strength": 0.0, **measures(sketches, 1)})]
    per_case = {
        "prompt": [case.caption for case in cases],
        "image": torch.stack([case.image for case in cases]),
        "mask_image": torch.stack([case.mask for case in cases])[:, None],
    }
    sweep = _Sweep(pipeline, per_case, targets, guidance_scale, num_samples, seed, batch_size, num_inference_steps)
    for strength in strengths:
        name = f"strength {strength:g}" + (" (plain inpainting)" if strength == 1 else "")
        results.append(sweep.run(strength, name, measures))
    return results
