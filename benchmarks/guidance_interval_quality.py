"""Does classifier-free guidance need every step? Guidance in a limited interval versus at every step.

Samples the held-out captions with the embedded 32x32 shapes model (or `--model`), DPM-Solver++ (2M) and
classifier-free guidance, from the same initial noise for every run, with guidance at every step and with
`guidance_interval` limited to parts of the noise range (Kynkaenniemi et al., 2024). Reports for each run the
shapes scorer's caption score (embedded model only: it measures quality without a reference), the PSNR against
the fully guided images, and the UNet work relative to full guidance (a step outside the interval runs the
conditional half of the batch only).

    python benchmarks/guidance_interval_quality.py [--steps 15] [--samples 2] [--json interval.json]
"""

import argparse
import json
import time

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from solver_quality import compare

from diffusers_glide import GlidePipeline
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.pipelines.guidance_interval import guided_steps
from diffusers_glide.shapes.scoring import evaluation_scenes, score_image

# (low, high) in training timesteps (0 = clean, 999 = pure noise); None = guidance at every step
INTERVALS = [None, (0, 700), (0, 500), (100, 999), (200, 999), (300, 999), (100, 700), (200, 700)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="GlidePipeline folder (default: the embedded shapes model)")
    parser.add_argument("--steps", type=int, default=15, help="DPM-Solver++ steps (default: 15)")
    parser.add_argument("--samples", type=int, default=2, help="images per caption (default: 2)")
    parser.add_argument("--guidance_scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    pipe = GlidePipeline.from_pretrained(args.model or embedded_model_path())
    pipe.set_progress_bar_config(disable=True)
    config = {k: v for k, v in pipe.scheduler.config.items() if k not in ("sampler", "eta", "timestep_respacing")}
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(config)
    scenes = evaluation_scenes("held_out")
    prompts = [scene.caption for scene in scenes]
    score = args.model is None

    rows, full = [], None
    for interval in INTERVALS:
        generators = [torch.Generator().manual_seed(args.seed + i) for i in range(len(prompts) * args.samples)]
        start = time.perf_counter()
        images = pipe(
            prompts,
            num_images_per_prompt=args.samples,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance_scale,
            guidance_interval=interval,
            generator=generators,
            output_type="np",
        ).images
        seconds = time.perf_counter() - start
        images = np.rint(images * 255) / 255  # as saved
        full = images if interval is None else full
        guided = guided_steps(pipe.scheduler.timesteps, interval)
        row = {
            "interval": interval,
            "guided_steps": sum(guided),
            "steps": len(guided),
            "unet_work": (len(guided) + sum(guided)) / (2 * len(guided)),
            "seconds": seconds,
            "psnr_db_vs_full_guidance": compare(images, full)["psnr_db"],
        }
        if score:
            checks = [score_image(image, scenes[i // args.samples]) for i, image in enumerate(images)]
            row["caption_score"] = float(np.mean([np.mean(list(c.values())) for c in checks]))
            row["all_correct"] = float(np.mean([all(c.values()) for c in checks]))
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"DPM-Solver++ {args.steps} steps, guidance {args.guidance_scale:g}, {len(images)} images")
    print()
    print(
        "| guidance interval | guided steps | UNet work | caption score | all correct | PSNR vs full guidance (dB) |"
    )
    print("|---|---|---|---|---|---|")
    for row in rows:
        interval = "every step" if row["interval"] is None else f"{row['interval'][0]} to {row['interval'][1]}"
        caption = f"{row['caption_score']:.3f} | {row['all_correct']:.3f}" if "caption_score" in row else "- | -"
        print(
            f"| {interval} | {row['guided_steps']} / {row['steps']} | {row['unet_work']:.0%} | {caption} | "
            f"{row['psnr_db_vs_full_guidance']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
