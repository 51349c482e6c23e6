"""One short GPU check of the FULL-SIZE GLIDE architectures (random weights), for a GPU lent for a few minutes.

On the released base (64x64, classifier-free guidance: UNet batch = 2 x images) and upsampler (64 -> 256)
configurations, with random weights (as in benchmark_glide.py: timing does not depend on values), it measures:

- precision: float16 and bfloat16 forwards (prompt encoding + one UNet step) against float32 on the same inputs,
  max / mean abs diff of the model output (the float32 reference runs with TF32 off);
- speed at batch 1 / 4 / 16 images, eager in float32 / float16 / bfloat16 and with `torch.compile` (default mode,
  bfloat16 unless `--compile_dtypes` says otherwise): seconds per UNet step (median), the first call's seconds
  (for compiled rows: the compilation that batch caused, reported as compile seconds), images per second of a
  whole sampling run of the stage (base: guided DPM-Solver++ 15 steps, upsampler: GLIDE's "fast27" DDIM), and the
  peak GPU memory (`torch.cuda.max_memory_allocated`) of those runs;
- `enable_model_cpu_offload`: a short base run with offload gives the image of a run without it (within
  `--offload_tolerance`) with a lower peak GPU memory.

It writes `gpu_check.json` and `gpu_check.md` to `--out` (default: `$OUT`, the folder the device tool returns),
rewritten after each section, so a run cut short still leaves what it measured ("complete": false). Compiled
rows are skipped, and listed as such, once `--time_budget` seconds have passed (one compile of a full-size UNet
can take minutes).

Without CUDA it says so and exits 0, unless `--device cpu --tiny` is given: a smoke run of every code path on
tiny configurations in seconds (compile only with `--compile`), which the tests run.

    python benchmarks/gpu_check.py --out results/                 # on a GPU machine (sized for < 8 minutes)
    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu_check
"""

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from benchmark_glide import DTYPES, STAGES, machine_description, make_scheduler, median_seconds, random_pipeline

PROMPT = "an oil painting of a corgi"
PROMPT_WORDS = PROMPT.split()
TIMESTEP = 500
# Tiny configurations (OpenAI options) for the CPU smoke run: two levels, attention at the second, 1 text layer.
_TINY = {
    "num_channels": 32,
    "num_res_blocks": 1,
    "channel_mult": "1,2",
    "num_head_channels": 32,
    "text_ctx": 16,
    "xf_width": 32,
    "xf_layers": 1,
    "xf_heads": 2,
}
TINY_OPTIONS = {
    "base": {**_TINY, "image_size": 8, "attention_resolutions": "4"},
    "upsample": {**_TINY, "image_size": 16, "attention_resolutions": "8"},
}
RESULT_NAME = "gpu_check"


class Device:
    """The measured device: how to wait for it and how to read its peak memory."""

    def __init__(self, name: str):
        self.device = torch.device(name)
        self.cuda = self.device.type == "cuda"
        self.memory_measure = "torch.cuda.max_memory_allocated" if self.cuda else "peak RSS of the process (CPU)"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def reset_peak_memory(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory_gb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated(self.device) / 1024**3
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: KiB

    def free(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()


@contextlib.contextmanager
def strict_float32():
    """float32 without TF32 (PyTorch lets cuDNN convolutions use TF32 by default): the reference of the drift."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------------------------
# Pipelines and inputs


def reference_pipeline(stage: str, tiny: bool):
    """The float32 random-weight pipeline of `stage` on the CPU; every measured copy is made from it."""
    from diffusers_glide.tokenization import build_word_level_tokenizer

    options = TINY_OPTIONS[stage] if tiny else None
    context = TINY_OPTIONS[stage]["text_ctx"] if tiny else 128
    # a word-level tokenizer: the text context is padded to its full length either way, so only the ids differ
    # from GPT-2's BPE, and the check needs no vocabulary files
    tokenizer = build_word_level_tokenizer(PROMPT_WORDS, context_length=context)
    pipe = random_pipeline(stage, torch.float32, tokenizer, options)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def copy_pipeline(reference, device: torch.device, dtype: torch.dtype, channels_last: bool):
    import copy

    models = {}
    for name in ("unet", "text_encoder"):
        # torch's own `to`: diffusers' warns on every cast about (no) modules to keep in float32
        models[name] = torch.nn.Module.to(copy.deepcopy(getattr(reference, name)), device, dtype)
    if channels_last:
        models["unet"].to(memory_format=torch.channels_last)
    pipe = type(reference)(**{**reference.components, **models})
    pipe.set_progress_bar_config(disable=True)
    return pipe


def guided(stage: str) -> bool:
    return stage == "base"


def step_inputs(pipe, stage: str, images: int) -> tuple[torch.Tensor, dict]:
    """Seeded float32 inputs of one denoising step for `images` images (the UNet's sample and conditioning)."""
    size = pipe.unet.config.sample_size
    rows = images * (2 if guided(stage) else 1)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(rows, 3, size, size, generator=generator)
    conditioning = {}
    if stage == "upsample":
        conditioning["low_res"] = torch.rand(rows, 3, size // 4, size // 4, generator=generator) * 2 - 1
    return sample, conditioning


def text_states(pipe, stage: str, images: int) -> torch.Tensor:
    cond, uncond = pipe.encode_prompt([PROMPT] * images, do_classifier_free_guidance=guided(stage))
    return cond if uncond is None else torch.cat([cond, uncond])


def one_step(pipe, stage: str, images: int) -> torch.Tensor:
    """Prompt encoding and one UNet forward in the pipeline's dtype, returned as float32 on the CPU."""
    sample, conditioning = step_inputs(pipe, stage, images)
    device, dtype = pipe.unet.device, pipe.unet.dtype
    with torch.no_grad():
        text = text_states(pipe, stage, images)
        conditioning = {key: value.to(device, dtype) for key, value in conditioning.items()}
        timestep = torch.tensor(TIMESTEP, device=device)
        output = pipe.unet(sample.to(device, dtype), timestep, text, **conditioning).sample
    return output.float().cpu()


def run_stage(pipe, stage: str, images: int, steps: dict, seed: int = 0) -> torch.Tensor:
    """A whole sampling run of `stage` for `images` images (output in [0, 1], float32 on the CPU)."""
    generator = torch.Generator().manual_seed(seed)
    prompts = [PROMPT] * images
    if guided(stage):
        result = pipe(prompts, guidance_scale=3.0, generator=generator, output_type="pt", **steps)
    else:
        low_size = pipe.unet.config.sample_size // 4
        low_res = torch.rand(images, 3, low_size, low_size, generator=torch.Generator().manual_seed(1))
        result = pipe(prompts, image=low_res, generator=generator, output_type="pt", **steps)
    return result.images.float().cpu()


# ---------------------------------------------------------------------------------------------------------------
# Measurements


def drift_row(stage: str, dtype_name: str, output: torch.Tensor, reference: torch.Tensor) -> dict:
    diff = (output - reference).abs()
    return {
        "stage": stage,
        "dtype": dtype_name,
        "max_abs_diff": finite_or_none(diff.max().item()),
        "mean_abs_diff": finite_or_none(diff.mean().item()),
        "float32_output_std": reference.std().item(),
    }


def speed_row(pipe, stage: str, dtype_name: str, images: int, compiled: bool, device: Device, args) -> dict:
    """Seconds per UNet step, the first call's seconds, images per second of a sampling run, peak memory."""
    sample, conditioning = step_inputs(pipe, stage, images)
    target, dtype = device.device, pipe.text_encoder.dtype
    device.reset_peak_memory()
    with torch.no_grad():
        text = text_states(pipe, stage, images)
        sample = sample.to(target, dtype)
        conditioning = {key: value.to(target, dtype) for key, value in conditioning.items()}
        timestep = torch.tensor(TIMESTEP, device=target)

        def step():
            return pipe.unet(sample, timestep, text, **conditioning).sample

        start = time.perf_counter()
        step()  # under torch.compile: (re)compiles for this batch
        device.sync()
        first_call = time.perf_counter() - start
        seconds, _ = median_seconds(step, args.warmup, args.repeats, device.sync)
    scheduler_spec = args.base_sampler if guided(stage) else args.upsample_sampler
    pipe.scheduler, steps = make_scheduler(scheduler_spec, pipe.scheduler.config)
    start = time.perf_counter()
    run_stage(pipe, stage, images, {"num_inference_steps": 2})  # warm-up: the pipeline's own first-call costs
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    run_stage(pipe, stage, images, steps)
    device.sync()
    pipeline_seconds = time.perf_counter() - start
    row = {
        "stage": stage,
        "dtype": dtype_name,
        "compiled": compiled,
        "batch": images,
        "unet_batch": sample.shape[0],
        "seconds_per_step": seconds,
        "first_call_seconds": first_call,
        "sampler": scheduler_spec,
        "pipeline_seconds": pipeline_seconds,
        "pipeline_warmup_seconds": warmup,
        "images_per_second": images / pipeline_seconds,
        "peak_memory_gb": device.peak_memory_gb(),
    }
    if compiled:
        row["compile_seconds"] = max(first_call - seconds, 0.0)
    return row


def offload_check(reference, device: Device, dtype_name: str, args) -> dict:
    """The same short base run with and without `enable_model_cpu_offload`: image difference and peak memory."""
    stage = "base"
    pipe = copy_pipeline(reference, device.device, DTYPES[dtype_name], args.channels_last)
    sampler = f"{args.base_sampler.split(':')[0]}:{args.offload_steps}"
    pipe.scheduler, steps = make_scheduler(sampler, pipe.scheduler.config)
    device.reset_peak_memory()
    start = time.perf_counter()
    expected = run_stage(pipe, stage, 1, steps)
    seconds_without, memory_without = time.perf_counter() - start, device.peak_memory_gb()
    pipe.to("cpu")
    device.reset_peak_memory()
    pipe.enable_model_cpu_offload(device=device.device)
    start = time.perf_counter()
    actual = run_stage(pipe, stage, 1, steps)
    seconds_with, memory_with = time.perf_counter() - start, device.peak_memory_gb()
    pipe.remove_all_hooks()
    difference = (actual - expected).abs().max().item()
    return {
        "stage": stage,
        "dtype": dtype_name,
        "sampler": sampler,
        "max_abs_diff": finite_or_none(difference),
        "tolerance": args.offload_tolerance,
        "same_image": difference <= args.offload_tolerance,
        "seconds_without": seconds_without,
        "seconds_with": seconds_with,
        "peak_memory_gb_without": memory_without,
        "peak_memory_gb_with": memory_with,
        # only GPU memory tells: on the CPU both runs share one process's peak RSS
        "lower_peak_memory": memory_with < memory_without if device.cuda else None,
    }


# ---------------------------------------------------------------------------------------------------------------
# Output


def markdown(results: dict) -> str:
    lines = [
        f"# GPU check ({results['mode']})",
        "",
        f"Machine: {results['machine']}. Peak memory: {results['memory_measure']}. "
        f"{'Complete.' if results['complete'] else 'INCOMPLETE (cut short).'} "
        f"{results['total_seconds']:.0f} s in all.",
        "",
        "| stage | dtype | max abs diff vs float32 | mean abs diff | float32 output std |",
        "|---|---|---|---|---|",
    ]
    for r in results["precision"]:
        lines.append(
            f"| {r['stage']} | {r['dtype']} | {_number(r['max_abs_diff'])} | {_number(r['mean_abs_diff'])} | "
            f"{r['float32_output_std']:.3f} |"
        )
    lines += [
        "",
        "| stage | dtype | compiled | images | UNet batch | s / step | first call (s) | sampler | images / s | "
        "peak memory (GB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["speed"]:
        lines.append(
            f"| {r['stage']} | {r['dtype']} | {'yes' if r['compiled'] else 'no'} | {r['batch']} | {r['unet_batch']} | "
            f"{r['seconds_per_step']:.4f} | {r['first_call_seconds']:.2f} | `{r['sampler']}` | "
            f"{r['images_per_second']:.2f} | {r['peak_memory_gb']:.2f} |"
        )
    offload = results.get("offload")
    if offload:
        lines += [
            "",
            f"`enable_model_cpu_offload` ({offload['stage']}, {offload['dtype']}, `{offload['sampler']}`): max abs "
            f"diff {_number(offload['max_abs_diff'])} (tolerance {offload['tolerance']}, same image: "
            f"{offload['same_image']}); peak memory {offload['peak_memory_gb_with']:.2f} GB with offload vs "
            f"{offload['peak_memory_gb_without']:.2f} GB without (lower: {offload['lower_peak_memory']}); "
            f"{offload['seconds_with']:.2f} s vs {offload['seconds_without']:.2f} s.",
        ]
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(results["skipped"]) + "."]
    return "\n".join(lines) + "\n"


def _number(value: float | None) -> str:
    return "not finite" if value is None else f"{value:.3g}"


def write_results(results: dict, out: Path) -> None:
    """Both files, each replaced atomically (a reader never sees half of one)."""
    out.mkdir(parents=True, exist_ok=True)
    for suffix, text in (("json", json.dumps(results, indent=2, allow_nan=False)), ("md", markdown(results))):
        path = out / f"{RESULT_NAME}.{suffix}"
        staging = path.with_name(f".{path.name}.tmp")
        staging.write_text(text)
        os.replace(staging, path)


# ---------------------------------------------------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT"), help="results folder (default: $OUT)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="tiny configurations: a smoke run of every code path")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    parser.add_argument("--batches", nargs="+", type=int, default=None, help="images per step (default: 1 4 16)")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure torch.compile'd UNets (default: on, except with --tiny)",
    )
    parser.add_argument(
        "--channels_last", action=argparse.BooleanOptionalAction, default=True, help="channels-last UNets (default)"
    )
    parser.add_argument("--compile_dtypes", nargs="+", default=["bfloat16"], choices=list(DTYPES))
    parser.add_argument("--base_sampler", default=None, help="default: dpm++:15 (--tiny: dpm++:2)")
    parser.add_argument("--upsample_sampler", default=None, help="default: glide-ddim:fast27 (--tiny: glide-ddim:2)")
    parser.add_argument("--warmup", type=int, default=None, help="default: 3 (--tiny: 0)")
    parser.add_argument("--repeats", type=int, default=None, help="default: 10 (--tiny: 1)")
    parser.add_argument("--offload_steps", type=int, default=None, help="default: 5 (--tiny: 2)")
    parser.add_argument("--offload_tolerance", type=float, default=1e-3, help="max abs diff of the [0, 1] images")
    parser.add_argument(
        "--time_budget", type=float, default=360, help="seconds after which no further compiled row starts"
    )
    args = parser.parse_args(argv)
    defaults = {
        "batches": ([1, 2], [1, 4, 16]),
        "compile": (False, True),
        "base_sampler": ("dpm++:2", "dpm++:15"),
        "upsample_sampler": ("glide-ddim:2", "glide-ddim:fast27"),
        "warmup": (0, 3),
        "repeats": (1, 10),
        "offload_steps": (2, 5),
    }
    for name, (tiny, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    if min(args.batches) < 1 or args.repeats < 1 or args.warmup < 0 or args.offload_steps < 1:
        parser.error("--batches, --repeats and --offload_steps must be positive, --warmup at least 0")
    return parser, args


def main(argv=None) -> int:
    parser, args = parse_args(argv)
    device = Device(args.device)
    if device.cuda and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here, nothing to measure (the CPU smoke run: --device cpu --tiny).")
        return 0
    if not device.cuda and not args.tiny:
        print("gpu_check: the full-size check needs a CUDA device (the CPU smoke run: --device cpu --tiny).")
        return 0
    if not args.out:
        parser.error("--out is required when $OUT is not set")
    out, started = Path(args.out), time.perf_counter()
    torch.manual_seed(0)
    results = {
        "complete": False,
        "mode": "tiny" if args.tiny else "full-size",
        "machine": machine_description(device.device),
        "torch": torch.__version__,
        "memory_measure": device.memory_measure,
        "channels_last": args.channels_last,
        "float32_tf32": {
            "cudnn_conv": torch.backends.cudnn.allow_tf32,
            "matmul": torch.backends.cuda.matmul.allow_tf32,
        },
        "stages": {},
        "precision": [],
        "speed": [],
        "offload": None,
        "skipped": [],
        "total_seconds": 0.0,
    }

    def save():
        results["total_seconds"] = time.perf_counter() - started
        write_results(results, out)

    references = {stage: reference_pipeline(stage, args.tiny) for stage in args.stages}
    for stage, reference in references.items():
        results["stages"][stage] = {
            "image_size": reference.unet.config.sample_size,
            "unet_rows_per_image": 2 if guided(stage) else 1,
            "unet_parameters_millions": sum(p.numel() for p in reference.unet.parameters()) / 1e6,
        }

    # 1. Drift and eager speed, dtype by dtype (one copy of a stage on the device at a time)
    for stage, reference in references.items():
        expected = None
        for dtype_name in ["float32"] + [d for d in args.dtypes if d != "float32"]:
            pipe = copy_pipeline(reference, device.device, DTYPES[dtype_name], args.channels_last)
            if expected is None:
                with strict_float32():
                    expected = one_step(pipe, stage, 1)
            else:
                results["precision"].append(drift_row(stage, dtype_name, one_step(pipe, stage, 1), expected))
            if dtype_name in args.dtypes:
                for images in args.batches:
                    results["speed"].append(speed_row(pipe, stage, dtype_name, images, False, device, args))
                    print(json.dumps(results["speed"][-1]), flush=True)
            del pipe
            device.free()
            save()

    # 2. Model CPU offload
    if "base" in references:
        offload_dtype = next((d for d in args.dtypes if d != "float32"), "float32")
        results["offload"] = offload_check(references["base"], device, offload_dtype, args)
        print(json.dumps(results["offload"]), flush=True)
        device.free()
        save()

    # 3. torch.compile, last: its compile times are the least predictable
    for stage, reference in references.items():
        for dtype_name in args.compile_dtypes if args.compile else []:
            pipe = copy_pipeline(reference, device.device, DTYPES[dtype_name], args.channels_last)
            pipe.unet = torch.compile(pipe.unet)
            for images in args.batches:
                if time.perf_counter() - started > args.time_budget:
                    results["skipped"].append(f"compiled {stage} {dtype_name} batch {images} (time budget)")
                    continue
                results["speed"].append(speed_row(pipe, stage, dtype_name, images, True, device, args))
                print(json.dumps(results["speed"][-1]), flush=True)
                save()
            del pipe
            device.free()

    results["complete"] = True
    save()
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
