"""Evaluate GLIDE's other stages on the shapes data: inpainting, upsampling, inpainting while upsampling, CLIP guidance.

Every stage is scored from its pixels with the scorer of [`scoring`](scoring.py), against the scene the stage
was asked for, on the captions of [`evaluation_scenes`] (the held-out combinations by default):

- [`evaluate_inpainting`] (`base-inpaint`): each scene is edited into one with another shape and another colour
  ([`inpainting_cases`]); the model repaints the masked region from the new caption. Reported: the score against
  the NEW scene and `kept_exact`, the fraction of samples whose kept pixels are, as uint8, exactly the input's.
- [`evaluate_upsampler`] (`upsample`): the scene rendered at the low resolution is upsampled 4x and compared
  with the scene rendered at the high resolution (PSNR, score), for several samplers and a bicubic baseline.
- [`evaluate_upsample_inpainting`] (`upsample-inpaint`): the same edits at the high resolution, with the
  low-resolution render of the edited scene as the low-resolution input (what an ideal base inpainter gives).
- [`evaluate_clip_guidance`] (`base` + noised CLIP): CLIP guidance alone, classifier-free guidance alone and both
  together, against the unconditional model.

Every function takes `limit` (only the first scenes, for quick checks), `batch_size` (scenes per pipeline call;
default all of them in one call) and `seed`. Each generated image has its own generator, seeded from `seed` and
its index, so the images do not depend on `batch_size`. Images are compared and scored after rounding to uint8,
as they would be saved.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..samplers import ANCESTRAL, DDIM, DPM_SOLVER, build_scheduler
from ..variants import variant_of_unet_config
from .dataset import COLORS, SHAPES, ShapeScene, render_scene, shape_mask
from .scoring import EvaluationResult, evaluation_scenes, score_images, summarize

REGIONS = ("shape", "rectangle", "free_form", "large")
_RECTANGLE_MAX_EXTENSION = 0.25  # each side of the rectangle mask moves out by up to this fraction of the size
_LARGE_MAX_AREA = 0.75  # a "large" region covers at most this fraction of the image


# ---------------------------------------------------------------------------------------------------------------
# Results


@dataclass
class StageResult:
    """A scored run and the stage's own measures (`extra`: e.g. `kept_exact`, `psnr_db`, `steps`, `seconds`)."""

    result: EvaluationResult
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.result.name


_EXTRA_COLUMNS = {  # key -> (column title, format)
    "steps": ("steps", "{:.0f}"),
    "psnr_db": ("PSNR (dB)", "{:.2f}"),
    "kept_exact": ("kept exact", "{:.3f}"),
    "kept_max_diff": ("kept max diff (/255)", "{:.0f}"),
    "seconds": ("seconds", "{:.2f}"),
}


def stage_table(results: Sequence[StageResult | EvaluationResult]) -> str:
    """A markdown table: the run, its extra measures, the score, all correct, each attribute, the sample count."""
    rows = [r if isinstance(r, StageResult) else StageResult(r) for r in results]
    extras = [key for key in _EXTRA_COLUMNS if any(key in r.extra for r in rows)]
    extras += sorted({key for r in rows for key in r.extra} - set(extras))
    attributes = sorted({key for r in rows for key in r.result.per_attribute})
    titles = [_EXTRA_COLUMNS.get(key, (key, ""))[0] for key in extras]
    lines = [
        "| run | " + " | ".join([*titles, "score", "all correct", *attributes, "samples"]) + " |",
        "|" + "---|" * (len(extras) + len(attributes) + 4),
    ]
    for row in rows:
        r = row.result
        cells = []
        for key in extras:
            value = row.extra.get(key)
            cells.append("" if value is None else _EXTRA_COLUMNS.get(key, ("", "{:.3f}"))[1].format(value))
        cells += [f"{r.accuracy:.3f}", f"{r.all_correct:.3f}"]
        cells += [f"{r.per_attribute[a]:.2f}" if a in r.per_attribute else "" for a in attributes]
        lines.append(f"| {r.name} | " + " | ".join([*cells, str(r.num_samples)]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Pixels


def to_uint8(images) -> np.ndarray:
    """Images in [0, 1] (numpy or torch, any layout) -> uint8, rounded as images are saved."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    return np.rint(np.clip(np.asarray(images, dtype=np.float64), 0, 1) * 255).astype(np.uint8)


def quantize(image: torch.Tensor) -> torch.Tensor:
    """A float image in [0, 1] moved onto the uint8 grid (k / 255), as a PNG of it would hold."""
    return (image.clamp(0, 1) * 255).round() / 255


def psnr(a, b) -> float:
    """PSNR in dB of two images in [0, 1] (peak 1): MSE over every pixel and channel; inf when they are equal."""
    a = a.detach().cpu().double().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
    b = b.detach().cpu().double().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"PSNR needs images of one shape, got {a.shape} and {b.shape}.")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor -> (H, W, 3) numpy."""
    return image.permute(1, 2, 0).numpy()


def _mean_psnr(images_u8: np.ndarray, references_u8: list[np.ndarray], num_samples: int) -> float:
    values = [psnr(img / 255, references_u8[i // num_samples] / 255) for i, img in enumerate(images_u8)]
    return float(np.mean(values))


def kept_pixels(images_u8: np.ndarray, cases: list[InpaintingCase], num_samples: int) -> dict[str, float]:
    """`kept_exact`: fraction of samples whose kept pixels equal the input's as uint8; `kept_max_diff`: worst gap."""
    exact, worst = [], 0
    for i, image in enumerate(images_u8):
        case = cases[i // num_samples]
        keep = case.mask.numpy() == 0
        known = to_uint8(to_hwc(case.image))
        diff = np.abs(image[keep].astype(np.int16) - known[keep].astype(np.int16))
        exact.append(bool((diff == 0).all()))
        worst = max(worst, int(diff.max(initial=0)))
    return {"kept_exact": float(np.mean(exact)), "kept_max_diff": float(worst)}


# ---------------------------------------------------------------------------------------------------------------
# Inpainting cases


@dataclass(frozen=True)
class InpaintingCase:
    """One edit: repaint `mask` (1 = repaint) of `image` (the original scene) so that it shows `target`."""

    original: ShapeScene
    target: ShapeScene
    image: torch.Tensor  # float32 (3, H, W) in [0, 1], the original scene on the uint8 grid
    mask: torch.Tensor  # float32 (H, W), 1 = repaint, 0 = keep (diffusers' convention)
    caption: str  # the target's caption


def edited_scene(scene: ShapeScene) -> ShapeScene:
    """The same background, place, size and named position, the next shape of SHAPES, and the next colour of
    COLORS that is neither the old colour nor the background."""
    shape = SHAPES[(SHAPES.index(scene.shape) + 1) % len(SHAPES)]
    names = list(COLORS)
    start = names.index(scene.color)
    following = [names[(start + k) % len(names)] for k in range(1, len(names))]
    color = next(name for name in following if name != scene.background)
    return dataclasses.replace(scene, color=color, shape=shape)


def _shape_region(original: ShapeScene, target: ShapeScene, size: int) -> torch.Tensor:
    covered = (shape_mask(original, size) > 0) | (shape_mask(target, size) > 0)
    return F.max_pool2d(covered.float()[None, None], 3, stride=1, padding=1)[0, 0]


def _rectangle_around(region: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    size = region.shape[-1]
    ys, xs = torch.nonzero(region, as_tuple=True)
    most = int(_RECTANGLE_MAX_EXTENSION * size)
    top, bottom, left, right = (int(v) for v in torch.randint(0, most + 1, (4,), generator=generator))
    y0, y1 = max(int(ys.min()) - top, 0), min(int(ys.max()) + bottom, size - 1)
    x0, x1 = max(int(xs.min()) - left, 0), min(int(xs.max()) + right, size - 1)
    rectangle = torch.zeros_like(region)
    rectangle[y0 : y1 + 1, x0 : x1 + 1] = 1
    return rectangle


def _large_region(region: torch.Tensor, kind: int, generator: torch.Generator) -> torch.Tensor:
    """A large region holding `region`: `kind` 0, a full-width strip; 1, a full-height strip; 2, a rectangle. Its
    sides grow at random until it covers about half to three quarters of the image (never more than 3/4)."""
    size = region.shape[-1]
    ys, xs = torch.nonzero(region, as_tuple=True)
    spans = [[int(ys.min()), int(ys.max()) + 1], [int(xs.min()), int(xs.max()) + 1]]  # rows, columns
    if kind < 2:
        spans[1 - kind] = [0, size]  # the strip runs across the whole image
    target = (0.5 + 0.25 * float(torch.rand((), generator=generator))) * size * size
    growable = [axis for axis in (0, 1) if not (kind < 2 and axis == 1 - kind)]
    longest_side = size if kind < 2 else int(0.87 * size)  # a rectangle spans neither the width nor the height
    while True:
        area = (spans[0][1] - spans[0][0]) * (spans[1][1] - spans[1][0])
        options = [
            (axis, end)
            for axis in growable
            for end in (0, 1)
            if (spans[axis][0] > 0 if end == 0 else spans[axis][1] < size)
            and spans[axis][1] - spans[axis][0] < longest_side
        ]
        grown_area = area + area // (spans[options[0][0]][1] - spans[options[0][0]][0]) if options else area
        if area >= target or not options or grown_area > _LARGE_MAX_AREA * size * size:
            break
        axis, end = options[int(torch.randint(len(options), (), generator=generator))]
        spans[axis][end] += 1 if end else -1
    large = torch.zeros_like(region)
    large[spans[0][0] : spans[0][1], spans[1][0] : spans[1][1]] = 1
    return large


def _segment_distances(points: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
    """Distance of each of `points` (P, 2) to the nearest of the segments `starts` -> `ends` (S, 2): (P,)."""
    direction = ends - starts
    along = ((points[:, None] - starts[None]) * direction[None]).sum(-1) / direction.square().sum(-1).clamp(min=1e-12)
    closest = starts[None] + along.clamp(0, 1)[..., None] * direction[None]
    return (points[:, None] - closest).norm(dim=-1).min(dim=1).values


def _brush_strokes_over(region: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brush strokes painted over `region` as a person scribbles out a shape: a zigzag across it, each turn a
    little past its sides, with a round brush 8% to 12% of the image wide, plus a stray stroke beyond it."""
    size = region.shape[-1]

    def uniform(low, high):
        return low + (high - low) * float(torch.rand((), generator=generator))

    ys, xs = torch.nonzero(region, as_tuple=True)
    top, bottom = (int(ys.min()) + 0.5) / size, (int(ys.max()) + 0.5) / size
    left, right = (int(xs.min()) + 0.5) / size, (int(xs.max()) + 0.5) / size
    radius = uniform(0.04, 0.06)
    rows = max(2, math.ceil((bottom - top) / (1.6 * radius)) + 1)
    points = []
    for row in range(rows):
        y = top + (bottom - top) * row / (rows - 1) + uniform(-0.3, 0.3) * radius
        x = left - uniform(0, 0.08) if row % 2 == 0 else right + uniform(0, 0.08)
        points.append((x, y))
    angle = uniform(0, 2 * math.pi)  # the brush leaves the last turn in a random direction
    length = uniform(0.1, 0.25)
    points.append((points[-1][0] + length * math.cos(angle), points[-1][1] + length * math.sin(angle)))
    path = torch.tensor(points, dtype=torch.float32).clamp(0, 1)
    grid = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    pixels = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), dim=-1).view(-1, 2)  # (x, y)
    painted = (_segment_distances(pixels, path[:-1], path[1:]) <= radius).view(size, size)
    return (painted | region.bool()).float()


def inpainting_cases(
    size: int, region: str = "shape", split: str = "held_out", seed: int = 0, limit: int | None = None
) -> list[InpaintingCase]:
    """
    One edit per scene of [`evaluation_scenes`] (`split`), at `size` x `size`: the target is [`edited_scene`].

    `region="shape"`: the mask covers every pixel that either shape touches, dilated by one pixel. `"rectangle"`:
    an axis-aligned rectangle around that region, each side moved out by a random 0..25% of the size, clipped to
    the image. `"free_form"`: brush strokes scribbled over that region (a zigzag and a stray stroke). `"large"`: a
    full-width strip, a full-height strip or a rectangle (in turn, by the case's index) holding that region and
    covering about 1/2 to 3/4 of the image. Random choices are seeded by `seed` + the case's index. `limit`: only
    the first cases (the same as slicing the full list).
    """
    if region not in REGIONS:
        raise ValueError(f"`region` must be one of {REGIONS}, got {region!r}.")
    scenes = evaluation_scenes(split)[:limit]
    cases = []
    for index, scene in enumerate(scenes):
        target = edited_scene(scene)
        mask = _shape_region(scene, target, size)
        generator = torch.Generator().manual_seed(seed + index)
        if region == "rectangle":
            mask = _rectangle_around(mask, generator)
        elif region == "free_form":
            mask = _brush_strokes_over(mask, generator)
        elif region == "large":
            mask = _large_region(mask, index % 3, generator)
        image = quantize(render_scene(scene, size))
        cases.append(InpaintingCase(scene, target, image, mask, target.caption))
    return cases


# ---------------------------------------------------------------------------------------------------------------
# Running a pipeline over the cases


def generate_images(
    pipeline,
    per_case: dict[str, Any],
    num_cases: int,
    num_samples: int,
    seed: int,
    batch_size: int | None,
    **call_kwargs,
) -> np.ndarray:
    """uint8 (num_cases * num_samples, H, W, 3), case-major; `per_case` holds lists / tensors of one row per case.

    Image j (over the whole run) has its own generator, so the images do not depend on `batch_size`."""
    chunk = batch_size or num_cases
    outputs = []
    for start in range(0, num_cases, chunk):
        stop = min(start + chunk, num_cases)
        generators = [
            torch.Generator().manual_seed(seed * 1_000_003 + j) for j in range(start * num_samples, stop * num_samples)
        ]
        images = pipeline(
            **{name: value[start:stop] for name, value in per_case.items()},
            **call_kwargs,
            num_images_per_prompt=num_samples,
            generator=generators,
            output_type="np",
        ).images
        outputs.append(to_uint8(images))
    return np.concatenate(outputs)


def check_variant(pipeline, expected: str, what: str) -> None:
    """Raise a ValueError unless `pipeline` runs a GLIDE UNet of the `expected` variant (`what` needs it)."""
    variant = variant_of_unet_config(pipeline.unet.config).model_type
    if variant != expected:
        raise ValueError(f"{what} needs a GLIDE {expected!r} pipeline; this one runs a {variant!r} UNet.")


def _guidance_name(scale: float) -> str:
    return f"guidance {scale:g}" if scale > 1 else "no guidance"


@torch.no_grad()
def evaluate_inpainting(
    pipeline,
    guidance_scales: Sequence[float] = (1.0, 5.0),
    region: str = "shape",
    num_samples: int = 1,
    split: str = "held_out",
    seed: int = 0,
    num_inference_steps: int | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    include_baseline: bool = True,
) -> list[StageResult]:
    """
    Repaint each case of [`inpainting_cases`] (at the model's size) with a `base-inpaint` pipeline
    ([`GlideInpaintPipeline`]), `num_samples` images each, at every guidance scale.

    Each result scores the outputs against the TARGET scene; `extra` holds `kept_exact` (fraction of samples whose
    kept pixels, as uint8, are exactly the input's) and `kept_max_diff` (largest kept-pixel difference, in
    1/255). With `include_baseline`, a first row scores the unchanged input against the target: what a model that
    repaints nothing gets (the background and position already match).
    """
    check_variant(pipeline, "base-inpaint", "evaluate_inpainting")
    cases = inpainting_cases(pipeline.unet.config.sample_size, region, split, seed, limit)
    targets = [case.target for case in cases]
    results = []
    if include_baseline:
        unchanged = to_uint8(np.stack([to_hwc(case.image) for case in cases]))
        checks = score_images(unchanged, targets, 1)
        baseline = summarize(f"{region} region, unchanged input (baseline)", 1.0, False, checks)
        results.append(StageResult(baseline, kept_pixels(unchanged, cases, 1)))
    per_case = {
        "prompt": [case.caption for case in cases],
        "image": torch.stack([case.image for case in cases]),
        "mask_image": torch.stack([case.mask for case in cases])[:, None],
    }
    for scale in guidance_scales:
        images = generate_images(
            pipeline,
            per_case,
            len(cases),
            num_samples,
            seed,
            batch_size,
            guidance_scale=scale,
            num_inference_steps=num_inference_steps,
        )
        result = summarize(
            f"{region} region, {_guidance_name(scale)}", scale, True, score_images(images, targets, num_samples)
        )
        results.append(StageResult(result, kept_pixels(images, cases, num_samples)))
    return results


# ---------------------------------------------------------------------------------------------------------------
# Upsampling


class Sampler(NamedTuple):
    """A way to sample: `make_scheduler(original scheduler config)` and extra keyword arguments of the call."""

    name: str
    make_scheduler: Callable[[Any], Any]
    call_kwargs: dict


def _built(sampler: str) -> Callable:
    """The scheduler of `sampler` (`diffusers_glide.samplers`) from a config, built as the command line builds it."""
    return functools.partial(build_scheduler, sampler=sampler)


DEFAULT_SAMPLERS: tuple[Sampler, ...] = (
    Sampler("ddim-fast27", _built(DDIM), {"respacing": "fast27"}),
    Sampler("ddpm-50", _built(ANCESTRAL), {"respacing": "50"}),
    Sampler("ddpm-100", _built(ANCESTRAL), {"respacing": "100"}),
    *(Sampler(f"dpm++-{steps}", _built(DPM_SOLVER), {"num_inference_steps": steps}) for steps in (5, 10, 15, 20)),
)
SAMPLER_NAMES: tuple[str, ...] = tuple(sampler.name for sampler in DEFAULT_SAMPLERS)


def _low_res_size(pipeline) -> int:
    size = pipeline.unet.config.sample_size
    if size % 4:
        raise ValueError(f"The upsampler's output size {size} is not a multiple of 4 (GLIDE upsamples 4x).")
    return size // 4


def bicubic_upsample(low_res: torch.Tensor, size: int) -> torch.Tensor:
    """(N, 3, h, w) in [0, 1] -> (N, 3, size, size): torch bicubic (align_corners=False), clamped to [0, 1]."""
    return F.interpolate(low_res, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


@torch.no_grad()
def evaluate_upsampler(
    pipeline,
    samplers: Sequence[Sampler | tuple] | None = None,
    num_samples: int = 1,
    split: str = "held_out",
    seed: int = 0,
    limit: int | None = None,
    batch_size: int | None = None,
) -> list[StageResult]:
    """
    Upsample each scene of [`evaluation_scenes`], rendered at the low resolution (a quarter of the model's size,
    on the uint8 grid), with an `upsample` pipeline ([`GlideUpsamplePipeline`]) and every sampler of `samplers`
    (default [`DEFAULT_SAMPLERS`]: GLIDE's "fast27" DDIM, 50 and 100 ancestral steps, DPM-Solver++ with 5, 10,
    15 and 20 steps); the prompt is the scene's caption.

    The first row is bicubic upsampling of the same input. Each row's `extra`: `steps` (UNet evaluations), `psnr_db`
    (mean over samples of the PSNR against the scene rendered at the model's size, both as uint8) and `seconds`
    (wall time of the run). The pipeline's scheduler is restored after each sampler.
    """
    check_variant(pipeline, "upsample", "evaluate_upsampler")
    low, high = _low_res_size(pipeline), pipeline.unet.config.sample_size
    scenes = evaluation_scenes(split)[:limit]
    low_res = torch.stack([quantize(render_scene(scene, low)) for scene in scenes])
    truth = [to_uint8(to_hwc(render_scene(scene, high))) for scene in scenes]

    start = time.perf_counter()
    bicubic = to_uint8(bicubic_upsample(low_res, high).permute(0, 2, 3, 1))
    seconds = time.perf_counter() - start
    result = summarize("bicubic", 1.0, False, score_images(bicubic, scenes, 1))
    results = [StageResult(result, {"steps": 0, "psnr_db": _mean_psnr(bicubic, truth, 1), "seconds": seconds})]

    per_case = {"prompt": [scene.caption for scene in scenes], "image": low_res}
    original = pipeline.scheduler
    for name, make_scheduler, call_kwargs in samplers or DEFAULT_SAMPLERS:
        try:
            pipeline.scheduler = make_scheduler(original.config)
            start = time.perf_counter()
            images = generate_images(pipeline, per_case, len(scenes), num_samples, seed, batch_size, **call_kwargs)
            seconds = time.perf_counter() - start
            steps = pipeline.num_timesteps
        finally:
            pipeline.scheduler = original
        result = summarize(name, 1.0, True, score_images(images, scenes, num_samples))
        extra = {"steps": steps, "psnr_db": _mean_psnr(images, truth, num_samples), "seconds": seconds}
        results.append(StageResult(result, extra))
    return results


@torch.no_grad()
def evaluate_upsample_inpainting(
    pipeline,
    region: str = "shape",
    num_samples: int = 1,
    split: str = "held_out",
    seed: int = 0,
    num_inference_steps: int | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    include_baseline: bool = True,
) -> list[StageResult]:
    """
    Inpaint while upsampling with an `upsample-inpaint` pipeline: the cases of [`inpainting_cases`] at the model's
    size (`inpaint_image` = the original, `mask_image` = the mask) with `image` = the low-resolution render of the
    TARGET scene (what an ideal base inpainter gives), the target's caption as prompt, the pipeline's own sampler.

    `extra`: `kept_exact`, `kept_max_diff` (as in [`evaluate_inpainting`]) and `psnr_db` against the target rendered
    at the model's size (the ideal output: both shapes lie inside the mask). With `include_baseline`, a first row
    pastes the bicubic upsampling of the low-resolution input into the repainted region.
    """
    check_variant(pipeline, "upsample-inpaint", "evaluate_upsample_inpainting")
    low, high = _low_res_size(pipeline), pipeline.unet.config.sample_size
    cases = inpainting_cases(high, region, split, seed, limit)
    targets = [case.target for case in cases]
    truth = [to_uint8(to_hwc(render_scene(case.target, high))) for case in cases]
    low_res = torch.stack([quantize(render_scene(case.target, low)) for case in cases])
    results = []
    if include_baseline:
        repaint = torch.stack([case.mask for case in cases])[:, None]
        known = torch.stack([case.image for case in cases])
        pasted = bicubic_upsample(low_res, high) * repaint + known * (1 - repaint)
        pasted = to_uint8(pasted.permute(0, 2, 3, 1))
        result = summarize(
            f"{region} region, bicubic in the mask (baseline)", 1.0, False, score_images(pasted, targets, 1)
        )
        extra = {**kept_pixels(pasted, cases, 1), "psnr_db": _mean_psnr(pasted, truth, 1)}
        results.append(StageResult(result, extra))
    per_case = {
        "prompt": [case.caption for case in cases],
        "image": low_res,
        "inpaint_image": torch.stack([case.image for case in cases]),
        "mask_image": torch.stack([case.mask for case in cases])[:, None],
    }
    images = generate_images(
        pipeline, per_case, len(cases), num_samples, seed, batch_size, num_inference_steps=num_inference_steps
    )
    result = summarize(f"{region} region", 1.0, True, score_images(images, targets, num_samples))
    extra = {**kept_pixels(images, cases, num_samples), "psnr_db": _mean_psnr(images, truth, num_samples)}
    results.append(StageResult(result, extra))
    return results


# ---------------------------------------------------------------------------------------------------------------
# CLIP guidance


@torch.no_grad()
def evaluate_clip_guidance(
    pipeline,
    clip_guidance_scales: Sequence[float] = (3.0,),
    guidance_scale: float = 3.0,
    num_samples: int = 1,
    split: str = "held_out",
    seed: int = 0,
    num_inference_steps: int | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
) -> list[EvaluationResult]:
    """
    Score a `base` [`GlidePipeline`] with the noised CLIP loaded (`pipeline.load_clip_guidance(...)`) on the
    captions of [`evaluation_scenes`], with, in order:

    1. the unconditional model (empty prompt, no guidance): the chance level;
    2. CLIP guidance alone: empty prompt, `clip_prompt` = the caption, at each of `clip_guidance_scales`;
    3. classifier-free guidance alone at `guidance_scale`;
    4. both: the caption, `guidance_scale` and each CLIP guidance scale.

    Every run starts from the same noise (the same seeds).
    """
    check_variant(pipeline, "base", "evaluate_clip_guidance")
    if not getattr(pipeline, "has_clip_guidance", False):
        raise ValueError("evaluate_clip_guidance needs the noised CLIP: call `pipeline.load_clip_guidance(folder)`.")
    scenes = evaluation_scenes(split)[:limit]
    captions = [scene.caption for scene in scenes]
    empty = [""] * len(scenes)
    runs = [("unconditional (empty prompt)", False, {"prompt": empty}, {"guidance_scale": 1.0})]
    for s in clip_guidance_scales:
        runs.append(
            (
                f"CLIP guidance {s:g} (empty prompt)",
                False,
                {"prompt": empty, "clip_prompt": captions},
                {"guidance_scale": 1.0, "clip_guidance_scale": s},
            )
        )
    free = f"classifier-free guidance {guidance_scale:g}" if guidance_scale > 1 else "conditional, no guidance"
    runs.append((free, True, {"prompt": captions}, {}))
    for s in clip_guidance_scales:
        runs.append(
            (
                f"{free} + CLIP guidance {s:g}",
                True,
                {"prompt": captions},
                {"clip_guidance_scale": s},
            )
        )
    results = []
    for name, conditional, per_case, call_kwargs in runs:
        call_kwargs = {"guidance_scale": guidance_scale, **call_kwargs}
        images = generate_images(
            pipeline,
            per_case,
            len(scenes),
            num_samples,
            seed,
            batch_size,
            num_inference_steps=num_inference_steps,
            **call_kwargs,
        )
        checks = score_images(images, scenes, num_samples)
        results.append(summarize(name, call_kwargs["guidance_scale"], conditional, checks))
    return results
