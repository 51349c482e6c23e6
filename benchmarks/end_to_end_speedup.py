"""A 256x256 image with the recommended fast settings versus OpenAI's notebook settings, in one process.

Both run the full-size base and upsampler architectures (the released configurations, random weights: the time
does not depend on the values; folders written once by `benchmark_glide.py`'s helpers), text -> 64x64 -> 256x256:

- notebook: float32, base 100 GLIDE ancestral steps with classifier-free guidance 3 (UNet batch 2), upsampler
  GLIDE ancestral "fast27" (27 steps, UNet batch 1);
- fast: bfloat16 (`--fast_dtype`), base DPM-Solver++ (2M) with 15 steps and guidance 3, upsampler DPM-Solver++ with
  `FAST_UPSAMPLER_STEPS` (5) steps.

Both with channels-last UNets. A denoising step is one UNet forward plus a scheduler update that costs
microseconds, so an image's time is its steps times the seconds of one UNet forward of each stage, plus the text
encoding. The script measures the four UNet forwards (base / upsampler x float32 / bfloat16) alternately, round
after round, so that a change of the machine's load hits every one of them, and takes medians. It also runs the
whole fast text-to-image call (`--full_fast`, default on) and reports it next to its estimate, as a check of the
model. `--full_notebook` runs the notebook's call too (about 8 minutes on 2 quiet cores).

Quality of the fast settings is measured separately on the trained embedded models (`solver_quality.py`,
`upsampler_quality.py`).

    python benchmarks/end_to_end_speedup.py [--rounds 3] [--threads 2] [--json speedup.json]
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from benchmark_glide import _load, default_vocab_dir, make_scheduler, peak_rss_gb, pipeline_folder

from diffusers_glide.samplers import FAST_STEPS, FAST_UPSAMPLER_STEPS

SETTINGS = {
    "notebook": {"dtype": "float32", "base": "glide-ddpm:100", "upsampler": "glide-ddpm:fast27", "steps": (100, 27)},
    "fast": {
        "dtype": "bfloat16",
        "base": f"dpm++:{FAST_STEPS}",
        "upsampler": f"dpm++:{FAST_UPSAMPLER_STEPS}",
        "steps": (FAST_STEPS, FAST_UPSAMPLER_STEPS),
    },
}
PROMPT = "an oil painting of a corgi"


class _Options:  # what benchmark_glide._load reads
    channels_last, compile = True, False


class Cascade:
    """The base and upsampler pipelines of one setting, and its UNet forwards."""

    def __init__(self, setting: dict, work_dir: Path, vocab_dir: Path):
        self.setting = setting
        dtype, device = getattr(torch, setting["dtype"]), torch.device("cpu")
        folders = {
            stage: pipeline_folder(work_dir, stage, setting["dtype"], vocab_dir) for stage in ("base", "upsample")
        }
        self.base = _load("base", folders["base"], dtype, device, _Options)
        self.upsampler = _load("upsample", folders["upsample"], dtype, device, _Options)
        self.base.scheduler, self.base_steps = make_scheduler(setting["base"], self.base.scheduler.config)
        self.upsampler.scheduler, self.up_steps = make_scheduler(setting["upsampler"], self.upsampler.scheduler.config)
        with torch.no_grad():
            cond, uncond = self.base.encode_prompt(PROMPT, do_classifier_free_guidance=True)
            self.base_text = torch.cat([cond, uncond])  # the guided batch: conditional and unconditional rows
            self.up_text, _ = self.upsampler.encode_prompt(PROMPT, do_classifier_free_guidance=False)
        self.base_sample = torch.randn(2, 3, 64, 64, dtype=dtype).contiguous(memory_format=torch.channels_last)
        self.up_sample = torch.randn(1, 3, 256, 256, dtype=dtype).contiguous(memory_format=torch.channels_last)
        self.low_res = torch.rand(1, 3, 64, 64, dtype=dtype) * 2 - 1
        self.timestep = torch.tensor(500)

    @torch.no_grad()
    def base_forward(self):
        return self.base.unet(self.base_sample, self.timestep, self.base_text).sample

    @torch.no_grad()
    def upsampler_forward(self):
        return self.upsampler.unet(self.up_sample, self.timestep, self.up_text, low_res=self.low_res).sample

    def text_to_image(self, base_steps=None, up_steps=None):
        generator = torch.Generator().manual_seed(0)
        low = self.base(
            PROMPT, guidance_scale=3.0, generator=generator, output_type="pt", **(base_steps or self.base_steps)
        ).images
        return self.upsampler(
            PROMPT, image=low, generator=generator, output_type="pil", **(up_steps or self.up_steps)
        ).images[0]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four UNet forwards (default: 3)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument(
        "--fast_dtype",
        default="bfloat16",
        choices=["bfloat16", "float32"],
        help="dtype of the fast settings (default: bfloat16); float32 on CPUs without hardware bfloat16 (AVX2 only), "
        "where a bfloat16 convolution is ~70 times slower than a float32 one",
    )
    parser.add_argument("--full_fast", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--full_notebook", action="store_true", help="also run the notebook's whole call")
    parser.add_argument("--work_dir", default=str(Path("/tmp") / "glide-benchmark"))
    parser.add_argument("--vocab_dir", default=str(default_vocab_dir()))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    SETTINGS["fast"]["dtype"] = args.fast_dtype

    cascades = {
        name: Cascade(setting, Path(args.work_dir), Path(args.vocab_dir)) for name, setting in SETTINGS.items()
    }
    forwards = {
        (name, stage): getattr(cascade, f"{stage}_forward")
        for name, cascade in cascades.items()
        for stage in ("base", "upsampler")
    }
    for forward in forwards.values():  # warm-up: first-call costs only
        forward()
    seconds = {key: [] for key in forwards}
    for _ in range(args.rounds):
        for key, forward in forwards.items():
            seconds[key].append(_timed(forward))
            print(json.dumps({"setting": key[0], "stage": key[1], "seconds": seconds[key][-1]}), flush=True)
    per_step = {key: statistics.median(values) for key, values in seconds.items()}

    result = {"threads": args.threads, "rounds": args.rounds, "settings": {}}
    for name, cascade in cascades.items():
        base_steps, up_steps = SETTINGS[name]["steps"]
        estimate = base_steps * per_step[name, "base"] + up_steps * per_step[name, "upsampler"]
        entry = {
            **SETTINGS[name],
            "seconds_per_base_step": per_step[name, "base"],
            "seconds_per_upsampler_step": per_step[name, "upsampler"],
            "all_base_seconds": seconds[name, "base"],
            "all_upsampler_seconds": seconds[name, "upsampler"],
            "estimated_seconds_per_image": estimate,
        }
        if (name == "fast" and args.full_fast) or (name == "notebook" and args.full_notebook):
            cascade.text_to_image({"num_inference_steps": 2}, {"num_inference_steps": 2})  # first-call costs
            entry["measured_seconds_per_image"] = _timed(cascade.text_to_image)
            print(json.dumps({"setting": name, "whole_call_seconds": entry["measured_seconds_per_image"]}), flush=True)
        result["settings"][name] = entry
    notebook, fast = result["settings"]["notebook"], result["settings"]["fast"]
    result["speedup"] = notebook["estimated_seconds_per_image"] / fast["estimated_seconds_per_image"]
    result["peak_rss_gb_both_settings_loaded"] = peak_rss_gb()

    print()
    print(
        "| settings | dtype | base | upsampler | s / base step | s / upsampler step | s / 256px image | measured whole call |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, entry in result["settings"].items():
        measured = entry.get("measured_seconds_per_image")
        print(
            f"| {name} | {entry['dtype']} | {entry['base']} | {entry['upsampler']} | "
            f"{entry['seconds_per_base_step']:.2f} | {entry['seconds_per_upsampler_step']:.2f} | "
            f"{entry['estimated_seconds_per_image']:.1f} | {'-' if measured is None else f'{measured:.1f}'} |"
        )
    print(f"\nspeed-up: {result['speedup']:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
