"""The benchmark scripts run: gpu_check.py's CPU smoke mode (every code path, tiny configurations) and its refusals."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU_CHECK = REPO_ROOT / "benchmarks" / "gpu_check.py"

PRECISION_FIELDS = {"stage", "dtype", "max_abs_diff", "mean_abs_diff", "float32_output_std"}
SPEED_FIELDS = {
    "stage",
    "dtype",
    "compiled",
    "batch",
    "unet_batch",
    "seconds_per_step",
    "first_call_seconds",
    "sampler",
    "pipeline_seconds",
    "pipeline_warmup_seconds",
    "images_per_second",
    "peak_memory_gb",
}
OFFLOAD_FIELDS = {
    "stage",
    "dtype",
    "sampler",
    "max_abs_diff",
    "tolerance",
    "same_image",
    "seconds_without",
    "seconds_with",
    "peak_memory_gb_without",
    "peak_memory_gb_with",
    "lower_peak_memory",
}


def run_gpu_check(*args: str) -> subprocess.CompletedProcess:
    # one thread: on a shared 2-core machine OpenMP threads fighting other processes make tiny ops 10x slower
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("OUT", None)
    return subprocess.run(
        [sys.executable, str(GPU_CHECK), *args], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300
    )


def numbers(value):
    """Every int / float inside a JSON value (booleans are not numbers here)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    result = run_gpu_check("--device", "cpu", "--tiny", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text()


def test_smoke_run_reports_every_field_with_finite_numbers(smoke_results):
    results, _ = smoke_results
    assert results["complete"] is True and results["mode"] == "tiny" and results["skipped"] == []
    assert results["memory_measure"] == "peak RSS of the process (CPU)"
    assert sorted(results["stages"]) == ["base", "upsample"]
    assert [results["stages"][s]["image_size"] for s in ("base", "upsample")] == [8, 16]
    all_numbers = list(numbers(results))
    assert len(all_numbers) > 100 and all(math.isfinite(n) for n in all_numbers)

    assert [(r["stage"], r["dtype"]) for r in results["precision"]] == [
        ("base", "bfloat16"),
        ("base", "float16"),
        ("upsample", "bfloat16"),
        ("upsample", "float16"),
    ]
    for row in results["precision"]:
        assert set(row) == PRECISION_FIELDS
        # half precision differs from float32, but by little next to the output's scale
        assert 0 < row["mean_abs_diff"] < 0.05 * row["float32_output_std"]
        assert row["mean_abs_diff"] < row["max_abs_diff"] < 0.25 * row["float32_output_std"]

    expected_rows = [
        (stage, dtype, batch)
        for stage in ("base", "upsample")
        for dtype in ("float32", "bfloat16", "float16")
        for batch in (1, 2)
    ]
    assert [(r["stage"], r["dtype"], r["batch"]) for r in results["speed"]] == expected_rows
    for row in results["speed"]:
        assert set(row) == SPEED_FIELDS and row["compiled"] is False
        assert row["unet_batch"] == row["batch"] * (2 if row["stage"] == "base" else 1)
        assert row["sampler"] == ("dpm++:2" if row["stage"] == "base" else "glide-ddim:2")
        assert row["seconds_per_step"] > 0 and row["pipeline_seconds"] > 0 and row["peak_memory_gb"] > 0
        assert row["images_per_second"] == pytest.approx(row["batch"] / row["pipeline_seconds"])


def test_smoke_run_checks_model_cpu_offload(smoke_results):
    offload = smoke_results[0]["offload"]
    assert set(offload) == OFFLOAD_FIELDS
    assert (offload["stage"], offload["dtype"], offload["sampler"]) == ("base", "bfloat16", "dpm++:2")
    assert offload["same_image"] is True and offload["max_abs_diff"] <= offload["tolerance"] == 1e-3
    assert offload["lower_peak_memory"] is None  # only GPU memory can show it


def test_smoke_run_writes_the_markdown_tables(smoke_results):
    results, markdown = smoke_results
    assert markdown.startswith("# GPU check (tiny)\n")
    assert "| stage | dtype | max abs diff vs float32 | mean abs diff | float32 output std |" in markdown
    table_rows = [line for line in markdown.splitlines() if line.startswith("| base |") or line.startswith("| upsa")]
    assert len(table_rows) == len(results["precision"]) + len(results["speed"])
    assert "`enable_model_cpu_offload` (base, bfloat16, `dpm++:2`): max abs diff 0 " in markdown


@pytest.fixture
def gpu_check(monkeypatch):
    """The script as a module (in-process: its refusals need no subprocess)."""
    monkeypatch.syspath_prepend(str(GPU_CHECK.parent))
    monkeypatch.delenv("OUT", raising=False)
    import gpu_check

    return gpu_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA the check would run")
def test_without_cuda_it_says_so_and_writes_nothing(gpu_check, tmp_path, capsys):
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out == (
        "gpu_check: no CUDA device here, nothing to measure (the CPU smoke run: --device cpu --tiny).\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--batches", "0"], "--batches, --repeats and --offload_steps must be positive, --warmup at least 0"),
        (["--warmup", "-1"], "--batches, --repeats and --offload_steps must be positive, --warmup at least 0"),
        ([], "--out is required when $OUT is not set"),
    ],
)
def test_bad_arguments_are_clear_errors(gpu_check, tmp_path, capsys, arguments, message):
    out = [] if not arguments else ["--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(["--device", "cpu", "--tiny", *arguments, *out])
    assert exit_info.value.code == 2
    assert f"error: {message}\n" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_activation_memory_counts_the_parameters_of_the_full_size_upsampler(monkeypatch):
    """activation_memory.py's count (shapes only, no arithmetic) holds exactly the parameter bytes of the model it
    builds, and activations that grow with the image."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    from accelerate import init_empty_weights
    from activation_memory import MIB, counted, unet_config

    from diffusers_glide import GlideUNet2DModel

    with init_empty_weights():
        parameters = sum(p.numel() for p in GlideUNet2DModel(**unet_config("upsample")).parameters())
    small, large = counted("upsample", torch.bfloat16, size=64), counted("upsample", torch.bfloat16, size=128)
    assert small["parameters_mib"] == round(2 * parameters / MIB, 1) == large["parameters_mib"]
    assert 0 < small["activations_mib"] < large["activations_mib"]
