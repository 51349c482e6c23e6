"""`--guidance_interval LOW HIGH`: the sampling commands pass it to the pipelines."""

import numpy as np
import PIL.Image
import torch

from diffusers_glide import GlidePipeline
from diffusers_glide.cli import main
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.samplers import build_scheduler

PROMPT = "a red circle on a blue background"


def _pixels(path):
    return np.asarray(PIL.Image.open(path).convert("RGB"))


def test_generate_passes_the_interval_to_the_pipeline(tmp_path, capsys):
    args = ["generate", PROMPT, "--steps", "4", "--seed", "3", "--no_progress"]
    assert main([*args, "--guidance_interval", "300", "999", "-o", str(tmp_path / "interval.png")]) == 0
    assert main([*args, "-o", str(tmp_path / "full.png")]) == 0

    pipe = GlidePipeline.from_pretrained(embedded_model_path("base"))
    pipe.scheduler = build_scheduler(pipe.scheduler.config, "dpm++")
    pipe.set_progress_bar_config(disable=True)
    expected = pipe(
        PROMPT,
        num_inference_steps=4,
        generator=torch.Generator().manual_seed(3),
        guidance_interval=(300, 999),
        output_type="np",
    ).images[0]
    np.testing.assert_array_equal(_pixels(tmp_path / "interval.png"), np.rint(expected * 255).astype(np.uint8))
    # DPM-Solver++'s 4 steps are at 999, 749, 500, 250: the last one runs unguided, which changes the image
    assert not np.array_equal(_pixels(tmp_path / "interval.png"), _pixels(tmp_path / "full.png"))


def test_bad_intervals(tmp_path, capsys):
    args = ["generate", PROMPT, "--steps", "2", "--no_progress", "-o", str(tmp_path / "x.png")]
    assert main([*args, "--guidance_interval", "-1", "999"]) == 2
    assert "argument --guidance_interval: " in capsys.readouterr().err
    assert main([*args, "--guidance_interval", "600", "200"]) == 2
    assert capsys.readouterr().err == (
        "error: `guidance_interval` must be (low, high) with low <= high, got (600.0, 200.0).\n"
    )
    assert not (tmp_path / "x.png").exists()
