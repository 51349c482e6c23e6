"""Tampered configs are refused before anything is allocated: each load runs under a memory limit and must answer
within seconds with the one-line error that names the key.

Found by fuzzing: `num_train_timesteps=1e9` in a pipeline's scheduler_config.json used 10.9 GB over 146 s before a
MemoryError traceback; `layers_per_block=1e6` in a UNet's config.json used 4 GB (a million modules, even on the meta
device), and so did `diffusers-glide train --unet_config '{"layers_per_block": 1000000}'`.

All the loads run in ONE subprocess (imports cost seconds), under `RLIMIT_AS` = `MEMORY_LIMIT`; each load is timed
on its own, and a load that tried to allocate gigabytes shows up as a MemoryError instead of the expected error.
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import TINY_UNET_CONFIG, tiny_pipeline, tiny_unet
from diffusers import DPMSolverMultistepScheduler

from diffusers_glide import GlideCLIPImageEncoder, GlideCLIPTextEncoder, GlideTextEncoder
from diffusers_glide.config_limits import MAX_PARAMETERS
from diffusers_glide.models.parameter_count import (
    clip_text_encoder_parameter_count,
    text_encoder_parameter_count,
    unet_parameter_count,
)

MEMORY_LIMIT = 3 * 2**30  # address space of the subprocess: the imports and a tiny pipeline take under 1 GB
SECONDS_PER_LOAD = 5  # the refused loads take milliseconds; the unchecked ones took minutes
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

# The subprocess: loads each case's folder with its loader and reports the outcome as JSON.
LOADER_SCRIPT = textwrap.dedent(
    """
    import json, resource, sys, time
    import diffusers_glide
    from diffusers_glide.samplers import build_scheduler

    LOADERS = {
        "pipeline": lambda path: diffusers_glide.GlidePipeline.from_pretrained(path),
        "unet": lambda path: diffusers_glide.GlideUNet2DModel.from_pretrained(path),
        "text_encoder": lambda path: diffusers_glide.GlideTextEncoder.from_pretrained(path),
        "clip_image_encoder": lambda path: diffusers_glide.GlideCLIPImageEncoder.from_pretrained(path),
        "clip_text_encoder": lambda path: diffusers_glide.GlideCLIPTextEncoder.from_pretrained(path),
        "dpm_solver": lambda path: build_scheduler(json.load(open(path)), "dpm++"),
    }
    results = {}
    for name, (loader, path) in json.loads(sys.argv[1]).items():
        start = time.perf_counter()
        try:
            LOADERS[loader](path)
            outcome = {"error": None}
        except BaseException as error:  # a MemoryError is an outcome too
            outcome = {"error": type(error).__name__, "message": str(error)}
        outcome["seconds"] = time.perf_counter() - start
        results[name] = outcome
    results["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(results))
    """
)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_limited(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`command` in a subprocess whose address space is capped at MEMORY_LIMIT."""
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=_limit_memory,
        env={**os.environ, **ENV},
    )


def _edit_json(path, **values):
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, **values}))


def _model_folder(root, name, model, **values) -> str:
    """`model` saved to `root/name` with its config.json edited to hold `values`."""
    folder = root / name
    model.save_pretrained(folder)
    _edit_json(folder / "config.json", **values)
    return str(folder)


def _estimate(folder: str, count) -> int:
    """The parameter count of the model that `folder`'s config.json describes."""
    return count(json.loads((Path(folder) / "config.json").read_text()))


@pytest.fixture(scope="module")
def tampered(tmp_path_factory):
    """{case: (loader, path)} for every tampered folder, and the subprocess's results for each."""
    root = tmp_path_factory.mktemp("tampered")
    pipeline_folder = root / "pipeline"
    tiny_pipeline("base").save_pretrained(pipeline_folder)
    # first, so that the lazy imports of the first load (seconds) are not timed with a tampered one
    cases = {"untampered": ("pipeline", str(pipeline_folder))}
    for name, steps in (("timesteps_1e9_float", 1e9), ("timesteps_10e9_int", 10**9)):
        folder = root / name
        shutil.copytree(pipeline_folder, folder)
        _edit_json(folder / "scheduler" / "scheduler_config.json", num_train_timesteps=steps)
        cases[name] = ("pipeline", str(folder))
    folder = root / "dpm_solver_folder"
    pipeline = tiny_pipeline("base")
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(pipeline.scheduler.config)
    pipeline.save_pretrained(folder)
    _edit_json(folder / "scheduler" / "scheduler_config.json", num_train_timesteps=10**9)
    cases["dpm_solver_folder"] = ("pipeline", str(folder))
    folder = root / "pipeline_unet_layers"
    shutil.copytree(pipeline_folder, folder)
    _edit_json(folder / "unet" / "config.json", layers_per_block=1_000_000)
    cases["pipeline_unet_layers"] = ("pipeline", str(folder))
    cases["unet_layers"] = ("unet", _model_folder(root, "unet_layers", tiny_unet(16), layers_per_block=1_000_000))
    # within every range, but ~14 billion parameters
    wide = {"block_out_channels": [8192] * 4, "attention_levels": [True] * 4, "layers_per_block": 3}
    cases["unet_too_many_parameters"] = ("unet", _model_folder(root, "unet_wide", tiny_unet(16), **wide))
    small = {"context_length": 4, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
    huge_table = {"vocab_size": 1_048_576, "hidden_size": 8192}  # 8.6 billion parameters in the token table
    text = GlideTextEncoder(vocab_size=10, **small)
    cases["text_encoder_too_many_parameters"] = ("text_encoder", _model_folder(root, "text", text, **huge_table))
    clip_text = GlideCLIPTextEncoder(vocab_size=10, projection_dim=8, **small)
    cases["clip_text_encoder_too_many_parameters"] = (
        "clip_text_encoder",
        _model_folder(root, "clip_text", clip_text, **huge_table),
    )
    layers = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
    image = GlideCLIPImageEncoder(image_size=8, patch_size=4, projection_dim=8, num_train_timesteps=10, **layers)
    cases["clip_image_timesteps"] = (
        "clip_image_encoder",
        _model_folder(root, "clip_image", image, num_train_timesteps=10**9),
    )
    for name, values in (("timesteps", {"num_train_timesteps": 10**9}), ("solver_order", {"solver_order": 10**9})):
        config = root / f"dpm_solver_{name}.json"
        config.write_text(json.dumps({"num_train_timesteps": 1000, "beta_schedule": "squaredcos_cap_v2", **values}))
        cases[f"dpm_solver_{name}"] = ("dpm_solver", str(config))

    result = run_limited([sys.executable, "-c", LOADER_SCRIPT, json.dumps(cases)])
    assert result.returncode == 0, result.stderr[-3000:]
    return cases, json.loads(result.stdout.splitlines()[-1])


def _refused(tampered, case: str, message: str):
    cases, results = tampered
    outcome = results[case]
    assert (outcome["error"], outcome.get("message")) == ("ValueError", message)
    assert outcome["seconds"] < SECONDS_PER_LOAD
    assert "\n" not in message
    return cases[case][1]


def test_the_untampered_folder_loads_and_the_subprocess_stayed_small(tampered):
    _, results = tampered
    assert results["untampered"]["error"] is None
    assert results["peak_rss_bytes"] < MEMORY_LIMIT // 2


@pytest.mark.parametrize(
    ("case", "shown"), [("timesteps_1e9_float", "1000000000.0"), ("timesteps_10e9_int", "1000000000")]
)
def test_pipeline_with_a_billion_scheduler_timesteps_is_refused(tampered, case, shown):
    # checked in the folder, before diffusers builds whichever scheduler the folder names
    cases, _ = tampered
    path = Path(cases[case][1], "scheduler", "scheduler_config.json")
    _refused(tampered, case, f"{path}: `num_train_timesteps` must be an integer in [2, 100000], got {shown}.")


def test_pipeline_saved_with_dpm_solver_and_a_billion_timesteps_is_refused(tampered):
    # DPM-Solver is a documented swap, so the folder's scheduler class fits its slot; its config is still checked
    cases, _ = tampered
    path = Path(cases["dpm_solver_folder"][1], "scheduler", "scheduler_config.json")
    message = f"{path}: `num_train_timesteps` must be an integer in [2, 100000], got 1000000000."
    _refused(tampered, "dpm_solver_folder", message)


def test_unet_with_a_million_layers_per_block_is_refused(tampered):
    message = "GlideUNet2DModel config: `layers_per_block` must be an integer in [1, 64], got 1000000."
    _refused(tampered, "unet_layers", message)
    _refused(tampered, "pipeline_unet_layers", message)


@pytest.mark.parametrize(
    ("case", "owner", "count"),
    [
        ("unet_too_many_parameters", "GlideUNet2DModel", unet_parameter_count),
        ("text_encoder_too_many_parameters", "GlideTextEncoder", text_encoder_parameter_count),
        ("clip_text_encoder_too_many_parameters", "GlideCLIPTextEncoder", clip_text_encoder_parameter_count),
    ],
)
def test_configs_within_every_range_but_too_many_parameters_are_refused(tampered, case, owner, count):
    cases, _ = tampered
    estimate = _estimate(cases[case][1], count)
    assert estimate > MAX_PARAMETERS == 4_000_000_000
    message = (
        f"{owner} config: the model would have {estimate:,} parameters (estimated from the config), more than the "
        "limit of 4,000,000,000 (ten times the largest GLIDE model); it is not built."
    )
    _refused(tampered, case, message)


def test_noised_clip_with_a_billion_timesteps_is_refused(tampered):
    message = "GlideCLIPImageEncoder config: `num_train_timesteps` must be an integer in [1, 100000], got 1000000000."
    _refused(tampered, "clip_image_timesteps", message)


def test_dpm_solver_from_a_config_with_a_billion_timesteps_or_solver_order_is_refused(tampered):
    # samplers.build_scheduler, as the command line and the web app build DPM-Solver++ from a GLIDE config
    message = "`num_train_timesteps` must be an integer in [2, 100000], got 1000000000."
    _refused(tampered, "dpm_solver_timesteps", message)
    _refused(tampered, "dpm_solver_solver_order", "`solver_order` must be an integer in [1, 16], got 1000000000.")


def test_training_cli_refuses_a_million_layers_per_block(tmp_path):
    script = shutil.which("diffusers-glide") or str(Path(sys.executable).parent / "diffusers-glide")
    output_dir = tmp_path / "out"
    unet_config = json.dumps({**TINY_UNET_CONFIG, "layers_per_block": 1_000_000})
    arguments = ["train", "--output_dir", str(output_dir), "--shapes", "--num_shape_images", "16"]
    result = run_limited([script, *arguments, "--unet_config", unet_config], timeout=120)
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        "error: GlideUNet2DModel config: `layers_per_block` must be an integer in [1, 64], got 1000000."
    ]
    assert not output_dir.exists()
