"""Score generated shape images against their captions from the pixels alone.

For each image the scorer recovers the background colour (median of the border), the shape colour (median of
the pixels far from the background), the shape (how much of its bounding box the shape fills: ~1 for a
square, ~0.79 for a circle, ~0.5 for a triangle) and, when the caption names it, the position (nearest
position to the shape's centroid). A sample's score is the fraction of its attributes that match the caption.

Run as a script on a pipeline folder (the embedded model of the task when `--model` is omitted):

    python -m diffusers_glide.shapes.evaluate --num_samples 4 --guidance_scales 1 3

It samples captions of the held-out (colour, shape, background) combinations, which the model never saw in
training (`--split train`: combinations seen in training), and reports the scores with classifier-free guidance at each scale, without guidance (scale 1) and
for the unconditional model (the empty prompt, scored against the same captions: the chance level).

`--task` evaluates the other GLIDE stages on the same captions (see `stage_evaluation.py`):

- `inpaint` (`base-inpaint` model): each scene is edited into another shape and colour; the model repaints a
  mask (`--regions shape rectangle`) at each of `--guidance_scales` (default 1 5). Reports the score against the
  edited scene and the fraction of samples whose kept pixels are exactly the input's.
- `upsample` (`upsample` model): upsamples the scenes rendered at a quarter of the model's size with each of
  `--samplers` (default all: GLIDE's fast27 DDIM, 50 and 100 ancestral steps, DPM-Solver++ with 5 to 20
  steps) and bicubic interpolation; reports PSNR against the full-size render, the score and the wall time.
- `upsample-inpaint` (`upsample-inpaint` model): the inpainting edits at the full size, given the
  low-resolution render of the edited scene.
- `clip` (`base` model + the noised CLIP of `--clip`): CLIP guidance at each of `--clip_guidance_scales`,
  classifier-free guidance (the single scale of `--guidance_scales`, default 3) and both, against the
  unconditional model.
- `img2img` (`base` model, see `editing_evaluation.py`): each scene rendered with its colours swapped is turned
  towards its caption at each of `--strengths`; reports the colours, whether the shape stayed in place and the
  distance from the input.
- `sketch` (`base-inpaint` model): each inpainting edit with a sketch (a blob of the target's colour in another
  shape) painted into its rectangle mask, at each of `--strengths` (1 = plain inpainting); reports how often the
  target's shape appears in the sketch's colour.

    python -m diffusers_glide.shapes.evaluate --task upsample --samplers ddim-fast27 dpm++-15 --num_samples 2
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

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


TASKS = ("text", "inpaint", "upsample", "upsample-inpaint", "clip", "img2img", "sketch")
# the embedded model each task evaluates when `--model` is not given
_TASK_MODELS = {
    "text": "base",
    "inpaint": "base-inpaint",
    "upsample": "upsample",
    "upsample-inpaint": "upsample-inpaint",
    "clip": "base",
    "img2img": "base",
    "sketch": "base-inpaint",
}


def main(argv=None) -> int:
    from ..embedded import embedded_model_path
    from ..pipelines import GlideImg2ImgPipeline, GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline
    from . import editing_evaluation as editing
    from . import stage_evaluation as stages

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="text", choices=TASKS, help="the GLIDE stage to evaluate (default: text)")
    parser.add_argument("--model", help="pipeline folder or Hub id (default: the task's embedded model)")
    parser.add_argument("--clip", help="clip task: noised CLIP folder or Hub id (default: the embedded one)")
    parser.add_argument(
        "--guidance_scales",
        type=float,
        nargs="+",
        help="classifier-free guidance scales (default: 1 3 for text, 1 5 for inpaint, 3 for clip: one value)",
    )
    parser.add_argument("--clip_guidance_scales", type=float, nargs="+", default=[3.0], help="clip task")
    parser.add_argument("--regions", nargs="+", choices=stages.REGIONS, default=["shape"], help="inpaint tasks")
    parser.add_argument(
        "--strengths",
        type=float,
        nargs="+",
        help=f"img2img and sketch tasks (default: {' '.join(map(str, editing.DEFAULT_STRENGTHS))} for img2img, "
        f"{' '.join(map(str, editing.DEFAULT_SKETCH_STRENGTHS))} for sketch)",
    )
    parser.add_argument(
        "--samplers", nargs="+", choices=stages.SAMPLER_NAMES, help="upsample task (default: all of them)"
    )
    parser.add_argument("--num_samples", type=int, default=4, help="images per held-out caption")
    parser.add_argument("--steps", type=int, help="denoising steps (default: the scheduler's respacing)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--split", default="held_out", choices=["held_out", "train"], help="unseen (default) or seen combinations"
    )
    parser.add_argument("--limit", type=int, help="only the first N captions (quick checks)")
    parser.add_argument("--batch_size", type=int, help="captions per pipeline call (default: all; not text)")
    parser.add_argument("--output_json", help="also write the results here")
    parser.add_argument("--save_grid", help="text task: write the images of every run into this folder as PNG grids")
    args = parser.parse_args(argv)
    if args.task != "text" and args.save_grid:
        parser.error("--save_grid is only available for --task text.")
    if args.task == "text" and (args.limit or args.batch_size):
        parser.error("--limit and --batch_size are not available for --task text.")
    if args.task == "upsample" and args.steps:
        parser.error("--task upsample takes its steps from --samplers, not --steps.")
    if args.task in ("clip", "img2img", "sketch") and args.guidance_scales and len(args.guidance_scales) != 1:
        parser.error(f"--task {args.task} takes a single classifier-free guidance scale.")
    if args.strengths and args.task not in ("img2img", "sketch"):
        parser.error("--strengths is only available for --task img2img and --task sketch.")
    model = args.model or embedded_model_path(_TASK_MODELS[args.task])
    common = {"num_samples": args.num_samples, "split": args.split, "seed": args.seed}
    staged = {**common, "limit": args.limit, "batch_size": args.batch_size}

    if args.task == "text":
        pipeline = GlidePipeline.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        results, images = evaluate_pipeline(
            pipeline,
            args.guidance_scales or [1.0, 3.0],
            args.num_samples,
            args.split,
            args.steps,
            args.seed,
            return_images=True,
        )
        print(results_table(results))
    elif args.task == "inpaint":
        pipeline = GlideInpaintPipeline.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        results = []
        for region in args.regions:
            results += stages.evaluate_inpainting(
                pipeline, args.guidance_scales or [1.0, 5.0], region, num_inference_steps=args.steps, **staged
            )
        print(stages.stage_table(results))
    elif args.task in ("upsample", "upsample-inpaint"):
        pipeline = GlideUpsamplePipeline.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        if args.task == "upsample":
            chosen = args.samplers or stages.SAMPLER_NAMES
            samplers = [sampler for sampler in stages.DEFAULT_SAMPLERS if sampler.name in chosen]
            results = stages.evaluate_upsampler(pipeline, samplers, **staged)
        else:
            results = []
            for region in args.regions:
                results += stages.evaluate_upsample_inpainting(
                    pipeline, region, num_inference_steps=args.steps, **staged
                )
        print(stages.stage_table(results))
    elif args.task in ("img2img", "sketch"):
        pipeline_class = GlideImg2ImgPipeline if args.task == "img2img" else GlideInpaintPipeline
        pipeline = pipeline_class.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        evaluate = editing.evaluate_img2img if args.task == "img2img" else editing.evaluate_sketch_inpainting
        strengths = args.strengths or (
            editing.DEFAULT_STRENGTHS if args.task == "img2img" else editing.DEFAULT_SKETCH_STRENGTHS
        )
        scale = (args.guidance_scales or [3.0 if args.task == "img2img" else 5.0])[0]
        results = evaluate(pipeline, strengths, scale, num_inference_steps=args.steps, **staged)
        print(stages.stage_table(results))
    else:  # clip
        pipeline = GlidePipeline.from_pretrained(model)
        pipeline.set_progress_bar_config(disable=True)
        if args.clip or not pipeline.has_clip_guidance:
            pipeline.load_clip_guidance(args.clip or embedded_model_path("clip"))
        results = stages.evaluate_clip_guidance(
            pipeline,
            args.clip_guidance_scales,
            (args.guidance_scales or [3.0])[0],
            num_inference_steps=args.steps,
            **staged,
        )
        print(results_table(results))

    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as f:
            json.dump([asdict(r) for r in results], f, indent=2)
    if args.save_grid:
        from pathlib import Path

        from diffusers.utils import make_image_grid

        folder = Path(args.save_grid)
        folder.mkdir(parents=True, exist_ok=True)
        for result, run_images in zip(results, images, strict=True):
            grid = make_image_grid(run_images, rows=len(run_images) // args.num_samples, cols=args.num_samples)
            grid.save(folder / f"{result.name.split(' (')[0].replace(' ', '_')}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
