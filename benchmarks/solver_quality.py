"""How close do few-step samplers get to a many-step reference from the same noise?

Runs the embedded 32x32 shapes model (or `--model`, e.g. converted real weights) on the held-out evaluation
captions with classifier-free guidance, from the same initial noise for every sampler, and compares each
sampler's images with a 1000-step DDIM reference (the deterministic limit all ODE samplers approach): mean
absolute pixel difference (0..255) and PSNR. It also scores every run with the shapes evaluation (caption
accuracy, embedded model only), which measures quality without a reference.

    python benchmarks/solver_quality.py [--model FOLDER] [--samples 2] [--json results.json]
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from diffusers_glide import GlidePipeline, GlideScheduler
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.shapes.scoring import evaluation_scenes, score_image

SAMPLERS = {
    "GLIDE ancestral (notebook)": lambda config: GlideScheduler.from_config(config, sampler="ddpm"),
    "GLIDE DDIM": lambda config: GlideScheduler.from_config(config, sampler="ddim"),
    "DDIM trailing": lambda config: DDIMScheduler.from_config(config, timestep_spacing="trailing"),
    "DPM-Solver++ 2M": lambda config: DPMSolverMultistepScheduler.from_config(
        config, algorithm_type="dpmsolver++", solver_order=2
    ),
    "UniPC": lambda config: UniPCMultistepScheduler.from_config(config),
}
RUNS = [
    ("GLIDE ancestral (notebook)", 100),
    ("GLIDE DDIM", 10),
    ("GLIDE DDIM", 25),
    ("GLIDE DDIM", 50),
    ("DDIM trailing", 10),
    ("DDIM trailing", 25),
    ("DPM-Solver++ 2M", 10),
    ("DPM-Solver++ 2M", 15),
    ("DPM-Solver++ 2M", 20),
    ("DPM-Solver++ 2M", 25),
    ("UniPC", 10),
    ("UniPC", 15),
    ("UniPC", 20),
    ("UniPC", 25),
]
REFERENCE = ("GLIDE DDIM", 1000)
BF16_RUNS = [("GLIDE ancestral (notebook)", 100), ("DPM-Solver++ 2M", 15)]


def sample(pipe, base_config, sampler, steps, prompts, samples, guidance_scale, seed):
    pipe.scheduler = SAMPLERS[sampler](base_config)
    generator = torch.Generator().manual_seed(seed)  # the same x_T for every sampler
    start = time.perf_counter()
    images = pipe(
        prompts,
        num_images_per_prompt=samples,
        num_inference_steps=steps,
        guidance_scale=guidance_scale,
        generator=generator,
        output_type="np",
    ).images
    return images, time.perf_counter() - start


def compare(images: np.ndarray, reference: np.ndarray) -> dict:
    diff = np.abs(images.astype(np.float64) - reference.astype(np.float64))
    mse = float((diff**2).mean())
    return {"mean_abs_diff_255": float(diff.mean() * 255), "psnr_db": 10 * math.log10(1 / mse) if mse else math.inf}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="GlidePipeline folder (default: the embedded shapes model)")
    parser.add_argument("--samples", type=int, default=1, help="images per caption (default: 1)")
    parser.add_argument(
        "--all_captions", action="store_true", help="both captions of each held-out scene (default: the first)"
    )
    parser.add_argument("--guidance_scale", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    pipe = GlidePipeline.from_pretrained(args.model or embedded_model_path())
    pipe.set_progress_bar_config(disable=True)
    base_config = pipe.scheduler.config
    scenes = evaluation_scenes("held_out")
    if not args.all_captions:
        scenes = scenes[::2]  # one caption per held-out (colour, shape, background) combination
    prompts = [scene.caption for scene in scenes]
    score = args.model is None  # the caption scorer only reads the shapes model's pictures

    run_args = (prompts, args.samples, args.guidance_scale, args.seed)
    reference, reference_seconds = sample(pipe, base_config, *REFERENCE, *run_args)
    rows = []
    for sampler, steps in [REFERENCE, *RUNS]:
        if (sampler, steps) == REFERENCE:
            images, seconds = reference, reference_seconds
        else:
            images, seconds = sample(pipe, base_config, sampler, steps, *run_args)
        row = {"sampler": sampler, "steps": steps, "seconds": seconds, **compare(images, reference)}
        if score:
            checks = [score_image(image, scenes[i // args.samples]) for i, image in enumerate(images)]
            row["caption_score"] = float(np.mean([np.mean(list(c.values())) for c in checks]))
        rows.append(row)
        print(json.dumps(row), flush=True)

    # bfloat16 drift: the same runs with the pipeline in bfloat16, against their float32 counterparts.
    fp32_images = {}
    for sampler, steps in BF16_RUNS:
        fp32_images[sampler, steps], _ = sample(pipe, base_config, sampler, steps, *run_args)
    pipe.to(torch.bfloat16)
    for sampler, steps in BF16_RUNS:
        images, seconds = sample(pipe, base_config, sampler, steps, *run_args)
        row = {"sampler": sampler, "steps": steps, "dtype": "bfloat16", "seconds": seconds}
        row.update({f"{k}_vs_float32": v for k, v in compare(images, fp32_images[sampler, steps]).items()})
        row.update({f"{k}_vs_reference": v for k, v in compare(images, reference).items()})
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print("| sampler | steps | mean abs diff vs 1000-step DDIM (0..255) | PSNR (dB) | caption score | seconds |")
    print("|---|---|---|---|---|---|")
    for row in (r for r in rows if "dtype" not in r):
        caption = f"{row['caption_score']:.3f}" if "caption_score" in row else "-"
        print(
            f"| {row['sampler']} | {row['steps']} | {row['mean_abs_diff_255']:.2f} | {row['psnr_db']:.1f} | "
            f"{caption} | {row['seconds']:.1f} |"
        )
    print()
    print(
        "| bfloat16 pipeline | steps | mean abs diff vs float32 (0..255) | PSNR vs float32 (dB) | PSNR vs reference (dB) |"
    )
    print("|---|---|---|---|---|")
    for row in (r for r in rows if "dtype" in r):
        print(
            f"| {row['sampler']} | {row['steps']} | {row['mean_abs_diff_255_vs_float32']:.2f} | "
            f"{row['psnr_db_vs_float32']:.1f} | {row['psnr_db_vs_reference']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
