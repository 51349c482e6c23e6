"""int8 post-training static quantization of the FULL-SIZE base UNet on a CPU, against the bfloat16 paths.

The released base configuration (random weights, as in benchmark_glide.py), one classifier-free-guided step
(UNet batch 2, 64x64). Variants, all in one process:

- `fp32`, `fp32-cl`: eager float32, channels-first (the reference of the drift) and channels-last;
- `bf16`, `bf16-cl`: eager bfloat16, channels-first and channels-last;
- `fp32-compiled`, `bf16-compiled`: `torch.compile` of the channels-last UNet;
- `int8`, `int8-bf16`: PyTorch 2 export quantization: `torch.export` -> `prepare_pt2e` with torchao's
  `X86InductorQuantizer` (int8 convolutions and linears: per-channel weights, static per-tensor activations) ->
  calibration -> `convert_pt2e` -> `torch.compile`; the other operations in float32 (`int8`) or under bfloat16
  autocast (`int8-bf16`, the "int8-mixed-bf16" recipe).

Calibration uses the UNet inputs of a short float32 sampling run (DPM-Solver++, real prompts): the even steps
calibrate, the odd steps (held out) measure the drift of every variant against float32 (max / mean abs diff).
Compiled variants are built with inductor's freezing (weights folded and prepacked, as the int8 recipe needs),
and their build and compile seconds are reported. Then `--rounds` rounds run every variant once on the same
held-out input, the order rotating each round (other processes load the machine: compare within rounds); the
summary gives each variant's median seconds with its interquartile range, and the median of the per-round ratios
to the fastest float variant (float32 or bfloat16: without AVX-512 bfloat16 hardware, bfloat16 is emulated and the
bfloat16 variants are left out of the default list).

Needs torchao (`pip install torchao`; torch 2.13 has no `torch.ao.quantization.quantize_pt2e` any more), which is
not a dependency of the project. Set the threads deliberately:

    OMP_NUM_THREADS=2 python benchmarks/int8_experiment.py --json int8.json
    OMP_NUM_THREADS=2 python benchmarks/int8_experiment.py --variants fp32 bf16-cl int8-bf16 --rounds 4
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from benchmark_glide import machine_description, make_scheduler
from gpu_check import reference_pipeline

VARIANTS = ("fp32", "fp32-cl", "fp32-compiled", "bf16", "bf16-cl", "bf16-compiled", "int8", "int8-bf16")
BF16_VARIANTS = ("bf16", "bf16-cl", "bf16-compiled", "int8-bf16")
PROMPT = "an oil painting of a corgi"


class UNetStep(torch.nn.Module):
    """The UNet as `(sample, timestep, text states) -> output`: one tensor out, the form torch.export takes."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states, return_dict=False)[0]


def sampling_inputs(pipe, steps: int) -> list[tuple[torch.Tensor, ...]]:
    """The float32 UNet inputs (sample, timestep, text states) of each step of a guided DPM-Solver++ run."""
    captured = []

    def record(module, args, kwargs):
        sample, timestep, text = (list(args) + [kwargs.get(k) for k in ("timestep", "encoder_hidden_states")])[:3]
        timestep = torch.as_tensor(timestep).expand(sample.shape[0]).clone()
        captured.append((sample.detach().clone(), timestep, text.detach().clone()))

    pipe.scheduler, step_kwargs = make_scheduler(f"dpm++:{steps}", pipe.scheduler.config)
    hook = pipe.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        pipe(
            PROMPT,
            guidance_scale=3.0,
            generator=torch.Generator().manual_seed(0),
            output_type="pt",
            **step_kwargs,
        )
    finally:
        hook.remove()
    return captured


def cast(inputs, dtype, channels_last=False):
    sample, timestep, text = inputs
    sample = sample.to(dtype)
    if channels_last:
        sample = sample.contiguous(memory_format=torch.channels_last)
    return sample, timestep, text.to(dtype)


class Variant:
    """One way of running the step: `run(inputs)` -> float32 output, and the seconds it took to build."""

    def __init__(self, name: str, run, build_seconds: float = 0.0):
        self.name, self.run, self.build_seconds = name, run, build_seconds


def build_variant(name: str, unet_fp32, calibration, example) -> Variant:
    import copy

    start = time.perf_counter()
    if name == "fp32":
        step = UNetStep(unet_fp32).eval()
        return Variant(name, lambda inputs: step(*inputs).float())
    if not name.startswith("int8"):
        dtype = torch.float32 if name.startswith("fp32") else torch.bfloat16
        channels_last = name.endswith(("-cl", "-compiled"))
        step = UNetStep(torch.nn.Module.to(copy.deepcopy(unet_fp32), dtype)).eval()
        if channels_last:
            step.to(memory_format=torch.channels_last)
        if name.endswith("-compiled"):
            step = torch.compile(step)  # compiles at the first call

        def run_float(inputs):
            return step(*cast(inputs, dtype, channels_last)).float()

        return Variant(name, run_float, time.perf_counter() - start)
    # int8: export, annotate, calibrate, convert; then compiled by inductor into int8 kernels
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    exported = torch.export.export(UNetStep(unet_fp32).eval(), example).module()
    quantizer = xiq.X86InductorQuantizer().set_global(xiq.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    for inputs in calibration:
        prepared(*inputs)
    quantized = torch.compile(convert_pt2e(prepared))
    autocast = name == "int8-bf16"

    def run(inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return quantized(*inputs).float()

    return Variant(name, run, time.perf_counter() - start)


def hardware_bfloat16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere it is emulated, many times slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown: measure it
    return "avx512_bf16" in flags or "amx_bf16" in flags


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--variants",
        nargs="+",
        default=None,
        choices=VARIANTS,
        help="default: all (bfloat16 ones: with hardware bf16)",
    )
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds (every variant once per round)")
    parser.add_argument("--sampling_steps", type=int, default=6, help="steps of the run that gives the inputs")
    parser.add_argument("--tiny", action="store_true", help="gpu_check.py's tiny base configuration (a smoke run)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.sampling_steps < 2:
        parser.error("--rounds must be positive and --sampling_steps at least 2")
    if args.variants is None:
        args.variants = list(VARIANTS) if hardware_bfloat16() else [v for v in VARIANTS if v not in BF16_VARIANTS]
    if any(v.startswith("int8") for v in args.variants):
        try:
            import torchao  # noqa: F401
        except ImportError:
            parser.error("the int8 variants need torchao (pip install torchao)")
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # fold and prepack the weights: the int8 recipe, and the best bf16 one
    inductor_config.force_disable_caches = True  # compile seconds of a cold start, whatever earlier runs cached
    torch.manual_seed(0)
    print(f"Machine: {machine_description(torch.device('cpu'))}", flush=True)

    pipe = reference_pipeline("base", args.tiny)
    unet = pipe.unet.eval()
    with torch.no_grad():
        seconds, inputs = timed(lambda: sampling_inputs(pipe, args.sampling_steps))
        print(f"sampling run for the inputs: {seconds:.1f} s, {len(inputs)} inputs", flush=True)
        calibration, held_out = inputs[0::2], inputs[1::2]
        references = [UNetStep(unet)(*x).float() for x in held_out]
        output_std = statistics.fmean(r.std().item() for r in references)  # the scale the drift is read against

        variants, results = [], {}
        for name in args.variants:
            variant = build_variant(name, unet, calibration, held_out[0])
            first_call_seconds, _ = timed(lambda v=variant: v.run(held_out[0]))  # compiled variants compile here
            diffs = [(variant.run(x) - r).abs() for x, r in zip(held_out, references, strict=True)]
            results[name] = {
                "build_seconds": variant.build_seconds,
                "first_call_seconds": first_call_seconds,
                "max_abs_diff": max(d.max().item() for d in diffs),
                "mean_abs_diff": statistics.fmean(d.mean().item() for d in diffs),
                "seconds": [],
            }
            print(name, json.dumps({k: v for k, v in results[name].items() if k != "seconds"}), flush=True)
            variants.append(variant)

        for round_index in range(args.rounds):
            shift = round_index % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                seconds, _ = timed(lambda v=variant: v.run(held_out[0]))
                results[variant.name]["seconds"].append(seconds)
            print(
                f"round {round_index + 1}: "
                + ", ".join(f"{v.name} {results[v.name]['seconds'][-1]:.2f} s" for v in variants),
                flush=True,
            )

    float_names = [v for v in results if not v.startswith("int8")]
    best_float = min(float_names, key=lambda v: statistics.median(results[v]["seconds"])) if float_names else None
    for result in results.values():
        q1, median, q3 = quartiles(result["seconds"])
        result.update(median_seconds=median, q1_seconds=q1, q3_seconds=q3)
        if best_float:
            ratios = [a / b for a, b in zip(result["seconds"], results[best_float]["seconds"], strict=True)]
            result["median_ratio_to_best_float"] = statistics.median(ratios)
            result["ratio_range"] = [min(ratios), max(ratios)]

    print(
        f"\nfastest float variant: {best_float}; reference of the drift: float32 eager (output std "
        f"{output_std:.3f}); held-out inputs: "
        f"{len(held_out)}, calibration inputs: {len(calibration)}"
    )
    print(
        "| variant | s / forward, median (IQR) | ratio to best float, median (range) | build s | first call s | "
        "max abs diff vs fp32 | mean abs diff |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        ratio = (
            f"{r['median_ratio_to_best_float']:.2f} ({r['ratio_range'][0]:.2f} to {r['ratio_range'][1]:.2f})"
            if best_float
            else "-"
        )
        print(
            f"| {name} | {r['median_seconds']:.2f} ({r['q1_seconds']:.2f} to {r['q3_seconds']:.2f}) | {ratio} | "
            f"{r['build_seconds']:.0f} | {r['first_call_seconds']:.0f} | {r['max_abs_diff']:.3g} | "
            f"{r['mean_abs_diff']:.3g} |"
        )
    if args.json:
        summary = {
            "machine": machine_description(torch.device("cpu")),
            "python": platform.python_version(),
            "configuration": "tiny" if args.tiny else "full-size base, UNet batch 2, 64x64",
            "best_float": best_float,
            "float32_output_std": output_std,
            "results": results,
        }
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
