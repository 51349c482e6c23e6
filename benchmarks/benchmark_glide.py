"""Speed and memory of the FULL-SIZE GLIDE architectures (random weights: timing does not depend on values).

For the base model (64x64, classifier-free guidance: UNet batch 2) and the upsampler (64 -> 256, batch 1), in
float32 and bfloat16 (and float16 on a GPU), it reports:

- seconds per denoising step (UNet forward; median of `--repeats` runs after `--warmup`),
- FLOPs of one step (torch.utils.flop_counter) and the GFLOP/s achieved, against the matrix-product peak of the
  same dtype measured in the same process,
- peak resident memory of the process (each measurement runs in a fresh subprocess),
- end to end: seconds for one 256x256 image, text -> base -> upsampler, with the given samplers, both stages
  loaded in the same dtype, and that process's peak memory.

The random-weight pipelines are written once (in the benchmarked dtype, as a converted checkpoint would be) to
`--work_dir` and loaded with `from_pretrained(..., dtype=...)`, the path a user takes.

    python benchmarks/benchmark_glide.py                      # everything, results table on stdout
    python benchmarks/benchmark_glide.py --dtypes bfloat16 --stages base --end_to_end_dtypes
    python benchmarks/benchmark_glide.py --compile            # torch.compile the UNets (slow first call)
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
STAGES = ("base", "upsample")  # also the converter model types of their configs


def default_vocab_dir() -> Path:
    return REPO / "tests" / "fixtures" / "tokenizers"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB


def median_seconds(fn, warmup: int, repeats: int, sync) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def matmul_peak_gflops(dtype: torch.dtype, device: torch.device, sync) -> float:
    size = 2048
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    seconds, _ = median_seconds(lambda: a @ b, warmup=3, repeats=10, sync=sync)
    return 2 * size**3 / seconds / 1e9


# ---------------------------------------------------------------------------------------------------------------
# Random full-size pipelines, written once


def _random_init_(model: torch.nn.Module) -> None:
    """O(1) activations: weights N(0, 1/fan_in), norms' scales 1, biases 0 (no denormals, no overflow)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 1:
                param.fill_(1.0 if "norm" in name and name.endswith("weight") else 0.0)
            else:
                fan_in = param[0].numel()
                values = torch.randn(param.shape, generator=generator) / fan_in**0.5
                param.copy_(values.to(param.dtype))


def random_pipeline(stage: str, dtype: torch.dtype, tokenizer, option_overrides: dict | None = None):
    """The CPU pipeline of `stage` at its released configuration (or with `option_overrides` of its OpenAI options),
    random weights (`_random_init_`), in `dtype`."""
    from accelerate import init_empty_weights

    from diffusers_glide import (
        GlidePipeline,
        GlideScheduler,
        GlideTextEncoder,
        GlideUNet2DModel,
        GlideUpsamplePipeline,
    )
    from diffusers_glide.conversion.options import configs_from_options, resolve_options
    from diffusers_glide.variants import get_variant

    variant = get_variant(stage)
    configs = configs_from_options(variant, resolve_options(variant, option_overrides))
    models = []
    for model_class, config in ((GlideUNet2DModel, configs.unet), (GlideTextEncoder, configs.text_encoder)):
        with init_empty_weights():
            model = model_class(**config)
        torch.nn.Module.to(model, dtype)  # still meta: no float32 copy is ever made
        model = model.to_empty(device="cpu")
        _random_init_(model)
        models.append(model.eval())
    pipeline_class = GlidePipeline if stage == "base" else GlideUpsamplePipeline
    return pipeline_class(
        unet=models[0], text_encoder=models[1], tokenizer=tokenizer, scheduler=GlideScheduler(**configs.scheduler)
    )


def write_random_pipeline(stage: str, dtype_name: str, folder: Path, vocab_dir: Path) -> None:
    from diffusers_glide import build_glide_tokenizer

    pipe = random_pipeline(stage, DTYPES[dtype_name], build_glide_tokenizer(vocab_dir))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    pipe.save_pretrained(staging)
    os.replace(staging, folder)


def pipeline_folder(work_dir: Path, stage: str, dtype_name: str, vocab_dir: Path) -> Path:
    folder = work_dir / f"glide-{stage}-random-{dtype_name}"
    if not (folder / "model_index.json").is_file():
        work_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, __file__, "--worker", "write", "--stages", stage, "--dtypes", dtype_name]
            + ["--work_dir", str(work_dir), "--vocab_dir", str(vocab_dir)],
            check=True,
        )
    return folder


# ---------------------------------------------------------------------------------------------------------------
# Workers (one measurement per process, for an honest peak memory)


def _load(stage: str, folder: Path, dtype: torch.dtype, device: torch.device, args):
    from diffusers_glide import GlidePipeline, GlideUpsamplePipeline

    pipeline_class = GlidePipeline if stage == "base" else GlideUpsamplePipeline
    pipe = pipeline_class.from_pretrained(folder, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    if args.channels_last:
        pipe.unet.to_channels_last()  # one copy of the weights (see GlideUNet2DModel.to_channels_last)
    if args.compile:
        pipe.unet = torch.compile(pipe.unet)
    return pipe


def worker_step(stage: str, dtype_name: str, args) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    device, dtype = torch.device(args.device), DTYPES[dtype_name]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    folder = pipeline_folder(Path(args.work_dir), stage, dtype_name, Path(args.vocab_dir))
    pipe = _load(stage, folder, dtype, device, args)
    size = pipe.unet.config.sample_size
    with torch.no_grad():
        cond, uncond = pipe.encode_prompt("an oil painting of a corgi", do_classifier_free_guidance=stage == "base")
        text = cond if uncond is None else torch.cat([cond, uncond])
        batch = text.shape[0]
        sample = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
        kwargs = {}
        if stage == "upsample":
            kwargs["low_res"] = torch.rand(batch, 3, size // 4, size // 4, device=device, dtype=dtype) * 2 - 1
        timestep = torch.tensor(500, device=device)

        def step():
            return pipe.unet(sample, timestep, text, **kwargs).sample

        seconds, times = median_seconds(step, args.warmup, args.repeats, sync)
        with FlopCounterMode(display=False) as counter:
            step()
    flops = counter.get_total_flops()
    return {
        "kind": "step",
        "stage": stage,
        "dtype": dtype_name,
        "unet_batch": batch,
        "image_size": size,
        "seconds_per_step": seconds,
        "all_seconds": times,
        "gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / seconds / 1e9,
        "matmul_peak_gflops": matmul_peak_gflops(dtype, device, sync),
        "peak_rss_gb": peak_rss_gb(),
    }


def make_scheduler(spec: str, config):
    """`glide-ddpm:100`, `glide-ddim:fast27`, `dpm++:15`, `unipc:15`, `ddim-trailing:10` -> (scheduler, steps kwargs)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    from diffusers_glide import GlideScheduler

    name, steps = spec.split(":")
    if name in ("glide-ddpm", "glide-ddim"):
        scheduler = GlideScheduler.from_config(config, sampler=name.split("-")[1])
        return scheduler, ({"num_inference_steps": int(steps)} if steps.isdigit() else {"respacing": steps})
    factories = {
        "dpm++": lambda: DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2),
        "unipc": lambda: UniPCMultistepScheduler.from_config(config),
        "ddim-trailing": lambda: DDIMScheduler.from_config(config, timestep_spacing="trailing"),
    }
    return factories[name](), {"num_inference_steps": int(steps)}


def worker_end_to_end(dtype_name: str, args) -> dict:
    device, dtype = torch.device(args.device), DTYPES[dtype_name]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    work_dir, vocab_dir = Path(args.work_dir), Path(args.vocab_dir)
    base = _load("base", pipeline_folder(work_dir, "base", dtype_name, vocab_dir), dtype, device, args)
    upsampler = _load("upsample", pipeline_folder(work_dir, "upsample", dtype_name, vocab_dir), dtype, device, args)
    base.scheduler, base_steps = make_scheduler(args.base_sampler, base.scheduler.config)
    upsampler.scheduler, up_steps = make_scheduler(args.upsample_sampler, upsampler.scheduler.config)
    prompt = "an oil painting of a corgi"

    def text_to_image(base_steps=base_steps, up_steps=up_steps):
        generator = torch.Generator(device).manual_seed(0)
        low = base(prompt, guidance_scale=3.0, generator=generator, output_type="pt", **base_steps).images
        return upsampler(prompt, image=low, generator=generator, output_type="pil", **up_steps).images[0]

    text_to_image({"num_inference_steps": 2}, {"num_inference_steps": 2})  # warm-up: first-call costs only
    seconds, times = median_seconds(text_to_image, warmup=0, repeats=args.end_to_end_repeats, sync=sync)
    return {
        "kind": "end_to_end",
        "dtype": dtype_name,
        "base_sampler": args.base_sampler,
        "upsample_sampler": args.upsample_sampler,
        "seconds_per_image": seconds,
        "all_seconds": times,
        "peak_rss_gb": peak_rss_gb(),
    }


# ---------------------------------------------------------------------------------------------------------------


def machine_description(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs (torch threads: {torch.get_num_threads()}){gpu}; "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def run_worker(kind: str, args, stage: str | None, dtype_name: str) -> dict:
    command = [sys.executable, __file__, "--worker", kind, "--dtypes", dtype_name]
    command += ["--stages", stage or "base", "--work_dir", args.work_dir, "--vocab_dir", args.vocab_dir]
    command += ["--device", args.device, "--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    command += ["--base_sampler", args.base_sampler, "--upsample_sampler", args.upsample_sampler]
    command += ["--end_to_end_repeats", str(args.end_to_end_repeats)]
    command += ["--channels_last"] * args.channels_last + ["--compile"] * args.compile
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{kind} {stage} {dtype_name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def table(results: list[dict]) -> str:
    lines = [
        "| stage | dtype | UNet batch | s / step | GFLOP / step | achieved GFLOP/s | matmul peak GFLOP/s | peak RSS (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in results if r["kind"] == "step"):
        lines.append(
            f"| {r['stage']} {r['image_size']}px | {r['dtype']} | {r['unet_batch']} | {r['seconds_per_step']:.2f} | "
            f"{r['gflop_per_step']:.0f} | {r['achieved_gflops']:.0f} | {r['matmul_peak_gflops']:.0f} | "
            f"{r['peak_rss_gb']:.2f} |"
        )
    e2e = [r for r in results if r["kind"] == "end_to_end"]
    if e2e:
        lines += ["", "| end to end (256x256) | dtype | s / image | peak RSS, both stages (GB) |", "|---|---|---|---|"]
        for r in e2e:
            lines.append(
                f"| base `{r['base_sampler']}` + upsampler `{r['upsample_sampler']}` | {r['dtype']} | "
                f"{r['seconds_per_image']:.1f} | {r['peak_rss_gb']:.2f} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", default=["base", "upsample"], choices=STAGES)
    parser.add_argument(
        "--dtypes", nargs="+", default=None, choices=list(DTYPES), help="default: fp32 + bf16 (+ fp16 on GPU)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--base_sampler", default="dpm++:15", help="e.g. glide-ddpm:100 (the notebook), dpm++:15")
    parser.add_argument("--upsample_sampler", default="glide-ddim:fast27", help="e.g. glide-ddim:fast27, dpm++:10")
    parser.add_argument("--end_to_end_repeats", type=int, default=1)
    parser.add_argument(
        "--end_to_end_dtypes", nargs="*", default=["bfloat16"], choices=list(DTYPES), help="default: bfloat16"
    )
    parser.add_argument("--channels_last", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNets")
    parser.add_argument("--work_dir", default=str(Path(tempfile.gettempdir()) / "glide-benchmark"))
    parser.add_argument("--vocab_dir", default=str(default_vocab_dir()))
    parser.add_argument("--json", help="also write all results to this JSON file")
    parser.add_argument("--worker", choices=["write", "step", "end_to_end"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    dtypes = args.dtypes or ["float32", "bfloat16"] + (["float16"] if device.type == "cuda" else [])

    if args.worker == "write":
        write_random_pipeline(
            args.stages[0],
            dtypes[0],
            Path(args.work_dir) / f"glide-{args.stages[0]}-random-{dtypes[0]}",
            Path(args.vocab_dir),
        )
        return 0
    if args.worker == "step":
        print(json.dumps(worker_step(args.stages[0], dtypes[0], args)))
        return 0
    if args.worker == "end_to_end":
        print(json.dumps(worker_end_to_end(dtypes[0], args)))
        return 0

    print(f"Machine: {machine_description(device)}", flush=True)
    results = []
    for dtype_name in dtypes:
        for stage in args.stages:
            results.append(run_worker("step", args, stage, dtype_name))
            print(json.dumps(results[-1]), flush=True)
        if dtype_name in args.end_to_end_dtypes:
            results.append(run_worker("end_to_end", args, None, dtype_name))
            print(json.dumps(results[-1]), flush=True)
    print()
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_description(device), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
