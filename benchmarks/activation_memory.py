"""Memory of one denoising step of the full-size stages: the activations on top of the weights, counted and measured.

Counted: the UNet forward of a stage (base: 64x64, UNet batch 2 under classifier-free guidance; upsampler:
64 -> 256, batch 1) runs under `FakeTensorMode`, which propagates shapes and dtypes without arithmetic, so it
takes seconds even in bfloat16 on a CPU without bfloat16 hardware. torch's `MemTracker` follows the live
tensors and reports the peak bytes of parameters and of activations.

Measured (`--measure STAGE DTYPE`, float32 is quick enough on a CPU): the same forward for real, on the random
full-size folder written by `benchmark_glide.py`, with one copy of the weights (`unet.to_channels_last()`). The
process's resident memory right before the step and its peak during it (`VmHWM`, reset through
`/proc/self/clear_refs`) give the activations' real cost, which is compared with the count of the same stage and
dtype. What the count misses (the allocator's slack, oneDNN's convolution scratch space) shows up as the
difference.

    python benchmarks/activation_memory.py                           # the counts, both stages, float32 + bfloat16
    python benchmarks/activation_memory.py --measure upsample float32 --threads 2
"""

import argparse
import gc
import json
from pathlib import Path

import torch

MIB = 2**20
STAGES = {"base": {"batch": 2, "low_res": False}, "upsample": {"batch": 1, "low_res": True}}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
TEXT_LENGTH = 128  # GLIDE's text context


def unet_config(stage: str) -> dict:
    from diffusers_glide.conversion.options import configs_from_options, resolve_options
    from diffusers_glide.variants import get_variant

    variant = get_variant(stage)
    return dict(configs_from_options(variant, resolve_options(variant, None)).unet)


def step_inputs(config: dict, stage: str, dtype: torch.dtype, size: int | None) -> dict:
    batch, size = STAGES[stage]["batch"], size or config["sample_size"]
    inputs = {
        "sample": torch.randn(batch, 3, size, size, dtype=dtype).contiguous(memory_format=torch.channels_last),
        "timestep": torch.tensor(500),
        "encoder_hidden_states": torch.randn(batch, TEXT_LENGTH, config["encoder_hid_dim"], dtype=dtype),
    }
    if STAGES[stage]["low_res"]:
        inputs["low_res"] = torch.rand(batch, 3, size // 4, size // 4, dtype=dtype) * 2 - 1
    return inputs


def counted(stage: str, dtype: torch.dtype, size: int | None = None) -> dict:
    """Peak MiB of parameters and activations of one no-grad UNet forward, from shapes alone."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from diffusers_glide import GlideUNet2DModel

    config = unet_config(stage)
    with FakeTensorMode():
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # built in `dtype`: converting fake parameters is not supported
        try:
            unet = GlideUNet2DModel(**config).eval()
        finally:
            torch.set_default_dtype(default)
        inputs = step_inputs(config, stage, dtype, size)
        tracker = MemTracker()
        tracker.track_external(unet)
        with tracker, torch.no_grad():
            unet(**inputs)
        (peak,) = tracker.get_tracker_snapshot("peak").values()
    by_kind = {str(kind.value if hasattr(kind, "value") else kind): round(n / MIB, 1) for kind, n in peak.items()}
    return {"parameters_mib": by_kind["Parameter"], "activations_mib": by_kind["Activation"]}


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def measured(stage: str, dtype_name: str, size: int | None, work_dir: Path, vocab_dir: Path) -> dict:
    """Resident MiB before one real UNet forward and at its peak, weights loaded as one copy."""
    from benchmark_glide import pipeline_folder

    from diffusers_glide import GlideUNet2DModel

    folder = pipeline_folder(work_dir, stage, dtype_name, vocab_dir)
    dtype = DTYPES[dtype_name]
    unet = GlideUNet2DModel.from_pretrained(folder / "unet", dtype=dtype).eval().to_channels_last()
    inputs = step_inputs(dict(unet.config), stage, dtype, size)
    gc.collect()
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    with torch.no_grad():
        unet(**inputs)
    peak = _status_kib("VmHWM")
    return {"rss_before_step_mib": round(before / 1024, 1), "peak_during_step_mib": round(peak / 1024, 1),
            "step_mib": round((peak - before) / 1024, 1)}  # fmt: skip


def main() -> None:
    from benchmark_glide import default_vocab_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stages", nargs="+", choices=list(STAGES), default=list(STAGES))
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--measure", nargs=2, metavar=("STAGE", "DTYPE"), help="also run one real step")
    parser.add_argument("--size", type=int, help="image side instead of the stage's (a cheaper real step)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work_dir", type=Path, default=Path("/tmp/glide-benchmark"))
    parser.add_argument("--vocab_dir", type=Path, default=default_vocab_dir())
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results = {"counted": {}, "size": args.size, "torch": torch.__version__}
    for stage in args.stages:
        for dtype_name in args.dtypes:
            results["counted"][f"{stage}/{dtype_name}"] = counted(stage, DTYPES[dtype_name], args.size)
            print(stage, dtype_name, results["counted"][f"{stage}/{dtype_name}"], flush=True)
    if args.measure:
        stage, dtype_name = args.measure
        results["measured"] = {
            f"{stage}/{dtype_name}": measured(stage, dtype_name, args.size, args.work_dir, args.vocab_dir)
        }
        print("measured", stage, dtype_name, results["measured"][f"{stage}/{dtype_name}"], flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
