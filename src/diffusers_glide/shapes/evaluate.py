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
from dataclasses import asdict

from ..cascade import DEFAULT, load_clip_guidance, load_pipeline
from ..samplers import SAMPLERS
from . import editing_evaluation as editing
from . import stage_evaluation as stages
from .scoring import evaluate_pipeline, results_table

TASKS = ("text", "inpaint", "upsample", "upsample-inpaint", "clip", "img2img", "sketch")


def main(argv=None) -> int:
    from ..pipelines import GlideImg2ImgPipeline, GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline

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
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="the sampler, as the command line's --sampler (default: the folder's configured one); not upsample",
    )
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
    if args.task == "upsample" and (args.steps or args.sampler):
        parser.error("--task upsample takes its samplers and steps from --samplers, not --sampler or --steps.")
    if args.task in ("clip", "img2img", "sketch") and args.guidance_scales and len(args.guidance_scales) != 1:
        parser.error(f"--task {args.task} takes a single classifier-free guidance scale.")
    if args.strengths and args.task not in ("img2img", "sketch"):
        parser.error("--strengths is only available for --task img2img and --task sketch.")
    # each task's pipeline, and the embedded model it evaluates when `--model` is omitted (or "default")
    pipeline_class, kind = {
        "text": (GlidePipeline, "base"),
        "inpaint": (GlideInpaintPipeline, "base-inpaint"),
        "upsample": (GlideUpsamplePipeline, "upsample"),
        "upsample-inpaint": (GlideUpsamplePipeline, "upsample-inpaint"),
        "clip": (GlidePipeline, "base"),
        "img2img": (GlideImg2ImgPipeline, "base"),
        "sketch": (GlideInpaintPipeline, "base-inpaint"),
    }[args.task]
    pipeline = load_pipeline(pipeline_class, args.model, kind, sampler=args.sampler, progress=False)
    if args.task == "clip":
        # the --clip folder, else the noised CLIP saved in the --model folder, else the embedded one
        load_clip_guidance(pipeline, args.clip or (None if pipeline.has_clip_guidance else DEFAULT))
    common = {"num_samples": args.num_samples, "split": args.split, "seed": args.seed}
    staged = {**common, "limit": args.limit, "batch_size": args.batch_size}

    if args.task == "text":
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
        results = []
        for region in args.regions:
            results += stages.evaluate_inpainting(
                pipeline, args.guidance_scales or [1.0, 5.0], region, num_inference_steps=args.steps, **staged
            )
        print(stages.stage_table(results))
    elif args.task in ("upsample", "upsample-inpaint"):
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
        evaluate = editing.evaluate_img2img if args.task == "img2img" else editing.evaluate_sketch_inpainting
        strengths = args.strengths or (
            editing.DEFAULT_STRENGTHS if args.task == "img2img" else editing.DEFAULT_SKETCH_STRENGTHS
        )
        scale = (args.guidance_scales or [3.0 if args.task == "img2img" else 5.0])[0]
        results = evaluate(pipeline, strengths, scale, num_inference_steps=args.steps, **staged)
        print(stages.stage_table(results))
    else:  # clip
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
