"""How many steps does the 4x upsampler need? Steps versus quality, from the same noise, on the trained upsampler.

Upsamples held-out shapes scenes, rendered at the low resolution, with the embedded 32 -> 128 upsampler (or
`--model`) and several samplers and step counts, from the same initial noise (`upsample_temp` 0.997, GLIDE's) for
every run. Each run is compared with:

- a 250-step GLIDE DDIM sample from the same noise (near the deterministic limit the ODE samplers approach; the
  100-step row shows how near): PSNR;
- the scene rendered at the high resolution, the ground truth an upsampler should recover: PSNR;
- the shapes scorer's caption checks (background, colour, shape, position).

    python benchmarks/upsampler_quality.py [--scenes 4] [--json upsampler.json]
"""

import argparse
import json
import time

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler
from solver_quality import compare

from diffusers_glide import GlideScheduler, GlideUpsamplePipeline
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.shapes.dataset import render_scene
from diffusers_glide.shapes.scoring import evaluation_scenes, score_image
from diffusers_glide.shapes.stage_evaluation import quantize, to_uint8


def _quiet(scheduler_class, config, **kwargs):
    # only the keys it reads: GlideScheduler's `timestep_respacing`, `sampler`, `eta` would be logged as ignored
    return scheduler_class.from_config(
        {k: v for k, v in config.items() if k not in ("sampler", "eta", "timestep_respacing")}, **kwargs
    )


SAMPLERS = {
    "GLIDE ancestral": lambda config: GlideScheduler.from_config(config, sampler="ddpm"),
    "GLIDE DDIM": lambda config: GlideScheduler.from_config(config, sampler="ddim"),
    "DPM-Solver++ 2M": lambda config: _quiet(DPMSolverMultistepScheduler, config, algorithm_type="dpmsolver++"),
    "UniPC": lambda config: _quiet(UniPCMultistepScheduler, config),
}
# (sampler, respacing or step count): "fast27" is GLIDE's 27-step respacing, the notebook's upsampler setting
RUNS = [
    ("GLIDE ancestral", "fast27"),
    ("GLIDE DDIM", "fast27"),
    ("GLIDE DDIM", 5),
    ("GLIDE DDIM", 10),
    ("DPM-Solver++ 2M", 2),
    ("DPM-Solver++ 2M", 3),
    ("DPM-Solver++ 2M", 5),
    ("DPM-Solver++ 2M", 7),
    ("DPM-Solver++ 2M", 10),
    ("UniPC", 3),
    ("UniPC", 5),
    ("UniPC", 10),
    ("GLIDE DDIM", 100),  # how far the reference is from converged
]
REFERENCE = ("GLIDE DDIM", 250)


def sample(pipe, config, sampler, steps, prompts, low_res, seed):
    pipe.scheduler = SAMPLERS[sampler](config)
    steps_kwargs = {"respacing": steps} if isinstance(steps, str) else {"num_inference_steps": steps}
    generators = [torch.Generator().manual_seed(seed + i) for i in range(len(prompts))]  # the same x_T per run
    start = time.perf_counter()
    images = pipe(prompts, image=low_res, generator=generators, output_type="np", **steps_kwargs).images
    return to_uint8(images), time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="GlideUpsamplePipeline folder (default: the embedded 32 -> 128 upsampler)")
    parser.add_argument("--scenes", type=int, default=4, help="held-out scenes, one caption each (default: 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    pipe = GlideUpsamplePipeline.from_pretrained(args.model or embedded_model_path("upsample"))
    pipe.set_progress_bar_config(disable=True)
    config = pipe.scheduler.config
    high = pipe.unet.config.sample_size
    scenes = evaluation_scenes("held_out")[::2][: args.scenes]
    prompts = [scene.caption for scene in scenes]
    low_res = torch.stack([quantize(render_scene(scene, high // 4)) for scene in scenes])
    truth = to_uint8(torch.stack([render_scene(scene, high) for scene in scenes]).permute(0, 2, 3, 1))

    reference, reference_seconds = sample(pipe, config, *REFERENCE, prompts, low_res, args.seed)
    rows = []
    for sampler, steps in [REFERENCE, *RUNS]:
        if (sampler, steps) == REFERENCE:
            images, seconds = reference, reference_seconds
        else:
            images, seconds = sample(pipe, config, sampler, steps, prompts, low_res, args.seed)
        checks = [score_image(image / 255, scene) for image, scene in zip(images, scenes, strict=True)]
        vs_reference = compare(images / 255, reference / 255)
        row = {
            "sampler": sampler,
            "steps": steps,
            "unet_evaluations": pipe.num_timesteps,
            "seconds": seconds,
            "mean_abs_diff_255_vs_reference": vs_reference["mean_abs_diff_255"],
            "psnr_db_vs_reference": vs_reference["psnr_db"],
            "psnr_db_vs_truth": compare(images / 255, truth / 255)["psnr_db"],
            "caption_score": float(np.mean([np.mean(list(c.values())) for c in checks])),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    print()
    print(f"{len(scenes)} held-out scenes, {high // 4} -> {high}, the same noise for every run")
    print()
    print("| sampler | steps | PSNR vs 250-step DDIM (dB) | PSNR vs truth (dB) | caption score | seconds |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['sampler']} | {row['steps']} | {row['psnr_db_vs_reference']:.1f} | {row['psnr_db_vs_truth']:.2f} "
            f"| {row['caption_score']:.3f} | {row['seconds']:.1f} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
