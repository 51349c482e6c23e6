"""The `diffusers-glide` console script: generate / inpaint / upsample / convert / train, and its user errors.

A few runs go through the INSTALLED script in a subprocess: what only a fresh process shows (the entry point, no
hub access with HF_HUB_OFFLINE=1, nothing on stderr: diffusers' warnings are printed once per process, so a run
in this process could hide one). Each costs ~5 s of imports, so they are few and started together. Everything
else calls `diffusers_glide.cli.main` in-process with the same arguments and checks its exit code, the paths it
prints, its `error:` line and the images, pixel for pixel against the pipelines called with the same sampler and
steps (on one thread, as the subprocesses, so their floating-point sums agree).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import REFERENCE_DIR, TOKENIZERS_DIR
from diffusers import DPMSolverMultistepScheduler
from safetensors import safe_open

import diffusers_glide
from diffusers_glide import (
    GlideImg2ImgPipeline,
    GlideInpaintPipeline,
    GlidePipeline,
    GlideScheduler,
    GlideUpsamplePipeline,
)
from diffusers_glide.cli import build_parser, main
from diffusers_glide.embedded import embedded_model_path

PROMPT = "a red circle on a blue background"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
TINY_TRAINING = [
    "--shapes",
    "--num_shape_images",
    "16",
    "--train_batch_size",
    "4",
    "--max_train_steps",
    "2",
    "--sample_steps",
    "0",
    "--checkpointing_steps",
    "0",
    "--unet_config",
    '{"block_out_channels": [16, 32], "attention_levels": [false, true], "norm_num_groups": 8, '
    '"attention_head_dim": 16}',
    "--text_encoder_config",
    '{"hidden_size": 32, "num_attention_heads": 2}',
    "--no_progress_bar",
]


@pytest.fixture(scope="module")
def script() -> str:
    found = shutil.which("diffusers-glide") or str(Path(sys.executable).parent / "diffusers-glide")
    if not Path(found).is_file():
        pytest.fail(
            f"The diffusers-glide console script is not installed (looked on PATH and at {found}): "
            "run `pip install -e .`."
        )
    return found


def run_together(script, *commands: list, cwd) -> list[subprocess.CompletedProcess]:
    """Runs of the installed script with each of `commands`' arguments, started together (each is mostly imports
    on one thread) and waited for in order."""
    started = [
        subprocess.Popen(
            [script, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd
        )
        for args in commands
    ]
    results = []
    for process in started:
        stdout, stderr = process.communicate(timeout=600)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    return results


def check_ok(result: subprocess.CompletedProcess) -> list[str]:
    """The written paths a successful run printed."""
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.fixture(autouse=True)
def progress_bars_restored():
    """`--no_progress` turns diffusers' progress bars off for the process; the next test gets them back."""
    from diffusers.utils import logging as diffusers_logging

    enabled = diffusers_logging.is_progress_bar_enabled()
    yield
    if enabled:
        diffusers_logging.enable_progress_bar()


def cli(capsys, *args) -> tuple[int, str, str]:
    """`diffusers-glide *args` in this process: (exit code, its stdout, its stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_ok(capsys, *args) -> list[str]:
    """The written paths a successful in-process run printed."""
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    return out.split()


def png(path: Path, size: int) -> None:
    with PIL.Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (size, size)), path


def write_inputs(folder: Path) -> dict[str, Path]:
    """An RGB image, masks (white = repaint a centre square; all black) and a 32x32 low-resolution image."""
    rng = np.random.default_rng(0)
    paths = {name: folder / f"{name}.png" for name in ("image", "mask", "black", "low")}
    PIL.Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(paths["image"])
    mask = np.zeros((48, 48), np.uint8)
    mask[12:36, 12:36] = 255
    PIL.Image.fromarray(mask).save(paths["mask"])
    PIL.Image.new("L", (48, 48), 0).save(paths["black"])
    PIL.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths["low"])
    return paths


# ---------------------------------------------------------------------------------------------------------------
# Through the installed script, and the same commands in-process


def check_quiet(result: subprocess.CompletedProcess) -> list[str]:
    """The written paths of a successful run that wrote nothing else (no log line, no warning, no progress bar)."""
    assert result.stderr == ""
    return check_ok(result)


def test_generate_with_the_embedded_default(script, tmp_path, capsys, one_thread):
    args = ["generate", PROMPT, "--steps", 2, "--num_images", 2, "--no_progress"]
    # float16 runs on the CPU: the image, without diffusers' warning (printed once per module) that it cannot.
    # One step: float16 convolutions are many times slower than float32 on a CPU without native half arithmetic.
    first, half = run_together(
        script,
        [*args, "--seed", 0, "-o", tmp_path / "a.png"],
        [*args[:2], "--dtype", "float16", "--steps", 1, "--no_progress", "-o", "half.png"],
        cwd=tmp_path,
    )
    first, half = check_quiet(first), check_quiet(half)
    assert half == ["half.png"]
    png(tmp_path / "half.png", 32)
    again = cli_ok(capsys, *args, "--seed", 0, "-o", tmp_path / "b.png")
    other = cli_ok(capsys, *args, "--seed", 1, "-o", tmp_path / "c.png")
    assert first == [str(tmp_path / "a-0.png"), str(tmp_path / "a-1.png")]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a-0.png",
        "a-1.png",
        "b-0.png",
        "b-1.png",
        "c-0.png",
        "c-1.png",
        "half.png",
    ]
    for path in first + again + other:
        png(Path(path), 32)
    data = {Path(p).name: Path(p).read_bytes() for p in first + again + other}
    # same seed: the same PNG from the installed script and from this process
    assert data["a-0.png"] == data["b-0.png"] and data["a-1.png"] == data["b-1.png"]
    assert data["a-0.png"] != data["c-0.png"] and data["a-1.png"] != data["c-1.png"]  # different seeds
    assert data["a-0.png"] != data["a-1.png"]


def test_generate_with_model_and_upsampler(tmp_path, converted_folders, capsys):
    output = tmp_path / "new" / "folder" / "corgi.png"
    code, out, err = cli(
        capsys,
        "generate",
        "a corgi",
        "--model",
        converted_folders["base"],
        "--upsampler",
        converted_folders["upsample"],
        "--steps",
        2,
        "--upsample_steps",
        2,
        "--seed",
        0,
        "-o",
        output,
    )
    assert code == 0, err
    # Progress bars are kept without --no_progress (tqdm writes them to stderr).
    assert "2/2" in err
    low = output.with_name("corgi-low.png")
    assert out.split() == [str(low), str(output)]
    png(low, 32)  # the base model's size
    png(output, 64)  # the upsampler's size


def test_generate_with_clip_guidance(tmp_path, converted_clip_folder, capsys):
    """--clip adds the noised CLIP to the embedded model (both 32x32) and guides with the notebook's scale 3."""
    args = ["generate", PROMPT, "--steps", 2, "--seed", 0, "--no_progress", "--clip", converted_clip_folder]
    (written,) = cli_ok(capsys, *args, "-o", tmp_path / "clip.png")
    (unguided,) = cli_ok(capsys, *args[:-2], "-o", tmp_path / "plain.png")
    pipe = GlidePipeline.from_pretrained(embedded_model_path())
    pipe.load_clip_guidance(converted_clip_folder)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)  # the default sampler
    expected = pipe(PROMPT, num_inference_steps=2, clip_guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(pixels(written), np.asarray(expected.images[0]))
    assert np.abs(pixels(written).astype(int) - pixels(unguided)).max() > 0


def test_inpaint_and_upsample(tmp_path, converted_folders, capsys, monkeypatch):
    inputs = write_inputs(tmp_path)
    common = ["--steps", 2, "--seed", 0, "--no_progress"]
    written = cli_ok(
        capsys,
        "inpaint",
        "a red square",
        "--image",
        inputs["image"],
        "--mask",
        inputs["mask"],
        "--model",
        converted_folders["base-inpaint"],
        "-o",
        tmp_path / "inpainted.png",
        *common,
    )
    assert written == [str(tmp_path / "inpainted.png")]
    png(tmp_path / "inpainted.png", 32)  # the model's size, not the 48x48 input's

    monkeypatch.chdir(tmp_path)
    written = cli_ok(
        capsys, "upsample", "a red square", "--image", inputs["low"], "--model", converted_folders["upsample"], *common
    )
    assert written == ["glide-upsample.png"]  # the default output, in the working directory
    png(tmp_path / "glide-upsample.png", 64)


def test_missing_model_folder_exits_with_2_and_one_error_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "generate", PROMPT, "--model", "/nonexistent/folder")
    assert code == 2 and out == ""
    assert err.startswith("error: /nonexistent/folder is neither a local pipeline folder nor a Hub repo id")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_convert(tmp_path, capsys):
    dump = tmp_path / "glide-upsample"
    code, out, err = cli(
        capsys,
        "convert",
        "--checkpoint_path",
        REFERENCE_DIR / "upsample.pt",
        "--model_type",
        "upsample",
        "--options_json",
        REFERENCE_DIR / "upsample.options.json",
        "--vocab_dir",
        TOKENIZERS_DIR,
        "--dump_path",
        dump,
        "--dtype",
        "float16",
    )
    assert code == 0, err
    assert "Converted" in out and "float16" in out
    with safe_open(str(dump / "unet" / "diffusion_pytorch_model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float16}
    pipe = GlideUpsamplePipeline.from_pretrained(dump, dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16 and pipe.unet.config.super_resolution


def test_train(tmp_path, capsys):
    output_dir = tmp_path / "run"
    code, out, err = cli(capsys, "train", "--output_dir", output_dir, *TINY_TRAINING)
    assert code == 0, err
    assert str(output_dir / "pipeline") in out
    pipe = GlidePipeline.from_pretrained(output_dir / "pipeline")
    assert pipe.unet.config.block_out_channels == [16, 32] and pipe.text_encoder.config.hidden_size == 32
    # The model card's reproduction command is the console script's.
    assert "diffusers-glide train --output_dir" in (output_dir / "pipeline" / "README.md").read_text()


# ---------------------------------------------------------------------------------------------------------------
# In-process: arguments and user errors (nothing is loaded)


def test_version_and_no_subcommand(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"diffusers-glide {diffusers_glide.__version__}"
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: diffusers-glide") and all(c in err for c in ("generate", "inpaint", "convert"))
    assert main(["generate", PROMPT, "--steps", "0"]) == 2
    assert "argument --steps: expected a positive integer, got 0" in capsys.readouterr().err
    assert main(["convert", "--checkpoint_path", "x.pt", "--model_type", "base", "--vocab_dir", "v"]) == 2
    assert "--dump_path is required" in capsys.readouterr().err
    assert main(["train", "--output_dir", "x", "--max_train_steps", "0"]) == 2
    assert "--max_train_steps must be positive" in capsys.readouterr().err
    for flag, value in (
        ("--guidance_scale", "nan"),
        ("--guidance_scale", "inf"),
        ("--upsample_guidance_scale", "-inf"),
    ):
        assert main(["generate", "x", f"{flag}={value}"]) == 2
        assert f"argument {flag}: expected a finite number, got {value}" in capsys.readouterr().err
    assert main(["upsample", "x", "--image", "x.png", "--upsample_temp", "inf"]) == 2
    assert "argument --upsample_temp: expected a finite number, got inf" in capsys.readouterr().err
    assert main(["generate", "x", "--clip_guidance_scale", "nan"]) == 2
    assert "argument --clip_guidance_scale: expected a finite number, got nan" in capsys.readouterr().err
    assert main(["generate", "x", "--sampler", "euler"]) == 2
    err = capsys.readouterr().err
    assert "argument --sampler: invalid choice: 'euler' (choose from " in err  # the choices, quoted since 3.12
    assert all(choice in err.split("choose from ")[1] for choice in ("dpm++", "ddim", "ancestral"))
    for value, expected in (("0", "0"), ("-2", "-2"), ("two", "'two'")):
        assert main(["upsample", "x", "--image", "x.png", "--threads", value]) == 2
        assert f"argument --threads: expected a positive integer, got {expected}" in capsys.readouterr().err


# what each command needs besides --seed (never read: the seed is refused first)
SEEDED_COMMANDS = {
    "generate": ["generate", PROMPT],
    "inpaint": ["inpaint", PROMPT, "--image", "x.png", "--mask", "m.png"],
    "img2img": ["img2img", PROMPT, "--image", "x.png"],
    "edit": ["edit", "--image", "x.png", "--edit", "m.png", PROMPT],
    "upsample": ["upsample", PROMPT, "--image", "x.png"],
}


@pytest.mark.parametrize("command", list(SEEDED_COMMANDS))
@pytest.mark.parametrize("seed", [2**70, 2**64, -1])
def test_seeds_out_of_range_are_usage_errors(capsys, command, seed):
    # 2**70 was an OverflowError traceback from torch's manual_seed; seeds are integers in [0, 2**64) as with --prompts
    assert main([*SEEDED_COMMANDS[command], "--seed", str(seed)]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (
        f"diffusers-glide {command}: error: argument --seed: seeds are integers in [0, 2**64), got {seed}"
    )


@pytest.mark.parametrize("command", list(SEEDED_COMMANDS))
def test_the_largest_seed_is_accepted(command):
    args = build_parser().parse_args([*SEEDED_COMMANDS[command], "--seed", str(2**64 - 1)])
    assert args.seed == 2**64 - 1
    assert torch.Generator().manual_seed(args.seed).initial_seed() == 2**64 - 1


@pytest.mark.parametrize("port", ["99999", "65536", "0", "http"])
def test_serve_port_out_of_range(capsys, port):
    # 99999 was an OverflowError traceback when the server bound its socket
    assert main(["serve", "--port", port]) == 2
    shown = port if port.isdigit() else repr(port)
    expected = f"diffusers-glide serve: error: argument --port: expected a port number in 1..65535, got {shown}"
    assert capsys.readouterr().err.splitlines()[-1] == expected
    assert build_parser().parse_args(["serve", "--port", "65535"]).port == 65535


def _hard_link(tmp_path, inputs) -> Path:
    os.link(inputs["image"], tmp_path / "out-2.png")
    return tmp_path / "out-2.png"


def _symlink(tmp_path, inputs) -> Path:
    (tmp_path / "link.png").symlink_to(inputs["low"])
    return tmp_path / "link.png"


def _symlinked_input(tmp_path, inputs) -> Path:
    (tmp_path / "input-link.png").symlink_to(inputs["low"])
    return inputs["low"]


def _copy_as_step(tmp_path, inputs) -> Path:
    shutil.copy(inputs["image"], tmp_path / "edited-step1.png")
    return tmp_path / "edited-step1.png"


# case: (prepare(tmp, inputs) -> the output that is an input, argv(tmp, inputs), the input's flag and path)
OUTPUT_IS_INPUT = {
    "-o is --image": (
        lambda tmp, inputs: inputs["image"],
        lambda tmp, inputs: ["img2img", PROMPT, "--image", inputs["image"], "-o", inputs["image"]],
        lambda tmp, inputs: ("--image", inputs["image"]),
    ),
    "-o is --mask": (
        lambda tmp, inputs: inputs["mask"],
        lambda tmp, inputs: [
            "inpaint",
            PROMPT,
            "--image",
            inputs["image"],
            "--mask",
            inputs["mask"],
            "-o",
            inputs["mask"],
        ],
        lambda tmp, inputs: ("--mask", inputs["mask"]),
    ),  # fmt: skip
    "-o is the mask of the second --edit": (
        lambda tmp, inputs: inputs["black"],
        lambda tmp, inputs: [
            "edit",
            "--image",
            inputs["image"],
            "--edit",
            inputs["mask"],
            PROMPT,
            "--edit",
            inputs["black"],
            PROMPT,
            "-o",
            inputs["black"],
        ],
        lambda tmp, inputs: ("--edit 2 mask", inputs["black"]),
    ),  # fmt: skip
    "an --save_steps image is --image": (
        _copy_as_step,
        lambda tmp, inputs: [
            "edit",
            "--image",
            tmp / "edited-step1.png",
            "--edit",
            inputs["mask"],
            PROMPT,
            "--edit",
            inputs["mask"],
            PROMPT,
            "--save_steps",
            "-o",
            tmp / "edited.png",
        ],
        lambda tmp, inputs: ("--image", tmp / "edited-step1.png"),
    ),  # fmt: skip
    "-o is a symlink to --image": (
        _symlink,
        lambda tmp, inputs: ["upsample", PROMPT, "--image", inputs["low"], "-o", tmp / "link.png"],
        lambda tmp, inputs: ("--image", inputs["low"]),
    ),
    "--image is a symlink to -o": (
        _symlinked_input,
        lambda tmp, inputs: ["upsample", PROMPT, "--image", tmp / "input-link.png", "-o", inputs["low"]],
        lambda tmp, inputs: ("--image", tmp / "input-link.png"),
    ),
    "a numbered -o is a hard link to --image": (
        _hard_link,
        lambda tmp, inputs: [
            "inpaint",
            PROMPT,
            "--image",
            inputs["image"],
            "--mask",
            inputs["mask"],
            "--num_images",
            3,
            "-o",
            tmp / "out.png",
        ],
        lambda tmp, inputs: ("--image", inputs["image"]),
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(OUTPUT_IS_INPUT))
def test_outputs_never_overwrite_inputs(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        diffusers_glide.cascade, "load_pipeline", lambda *args, **kwargs: pytest.fail("a model was loaded")
    )
    inputs = write_inputs(tmp_path)
    prepare, argv, given = OUTPUT_IS_INPUT[case]
    output = prepare(tmp_path, inputs)
    flag, path = given(tmp_path, inputs)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, _, err = cli(capsys, *argv(tmp_path, inputs))
    assert code == 2, err
    assert err.splitlines()[-1] == (
        f"error: The output '{output}' is the input {flag} '{path}' (the same file): give another output, or pass "
        "--overwrite_input to write over the input."
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_overwrite_input_writes_over_the_input(tmp_path, capsys):
    inputs = write_inputs(tmp_path)
    argv = ["img2img", PROMPT, "--image", inputs["image"], "-o", inputs["image"], "--steps", 2, "--no_progress"]
    assert cli_ok(capsys, *argv, "--overwrite_input") == [str(inputs["image"])]
    png(inputs["image"], 32)  # was 48x48: the model's output replaced it


def test_single_image_commands_remove_the_temporary_files_of_dead_writers(tmp_path, capsys):
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    out = tmp_path / "out"
    out.mkdir()
    stale, live = out / f".a.png.{dead}-0a1b2c3d.tmp", out / f".b.png.{os.getppid()}-0a1b2c3d.tmp"
    for path in (stale, live):
        path.write_bytes(b"\x89PNG cut")
    assert cli_ok(capsys, "generate", PROMPT, "--steps", 1, "--no_progress", "-o", out / "a.png") == [
        str(out / "a.png")
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted([live.name, "a.png"])


# ---------------------------------------------------------------------------------------------------------------
# In-process: the samplers and their defaults, pixel for pixel against the pipelines called with the same ones


def pixels(path: Path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image)


def embedded(pipeline_class, kind: str, sampler: str | None = None):
    """The embedded model of `kind`, with diffusers' DPM-Solver++ or GLIDE's `sampler` ("ddpm", "ddim"), or with
    its own scheduler (None)."""
    pipe = pipeline_class.from_pretrained(embedded_model_path(kind))
    pipe.set_progress_bar_config(disable=True)
    if sampler == "dpm++":
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    elif sampler is not None:
        pipe.scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler=sampler)
    return pipe


def test_generate_and_upsample_sample_with_dpm_solver_by_default(tmp_path):
    """The fast path: DPM-Solver++ with 15 steps for text to image, 5 for upsampling (generate's stage and upsample)."""
    output = tmp_path / "fast.png"
    assert main(["generate", PROMPT, "--seed", "0", "--upsampler", "default", "--no_progress", "-o", str(output)]) == 0
    generator = torch.Generator().manual_seed(0)
    low = embedded(GlidePipeline, "base", "dpm++")(PROMPT, num_inference_steps=15, generator=generator).images
    upsampler = embedded(GlideUpsamplePipeline, "upsample", "dpm++")
    high = upsampler(PROMPT, image=low, num_inference_steps=5, generator=generator).images
    assert np.array_equal(pixels(tmp_path / "fast-low.png"), np.asarray(low[0]))
    assert np.array_equal(pixels(output), np.asarray(high[0]))

    argv = ["upsample", PROMPT, "--image", str(tmp_path / "fast-low.png"), "--seed", "1", "--no_progress"]
    assert main([*argv, "-o", str(tmp_path / "up.png")]) == 0
    expected = upsampler(PROMPT, image=low[0], num_inference_steps=5, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(pixels(tmp_path / "up.png"), np.asarray(expected.images[0]))


def test_the_notebooks_samplers(tmp_path, converted_folders):
    """`--sampler ancestral --steps N` and `--upsample_sampler ddim` (no steps: the folder's configuration) sample
    converted models with GLIDE's own samplers, as OpenAI's notebooks do with N = 100 (the scheduler tests check
    that N steps are the respacing "N") and "fast27" DDIM upsampling."""
    output = tmp_path / "notebook.png"
    models = ["--model", str(converted_folders["base"]), "--upsampler", str(converted_folders["upsample"])]
    argv = ["generate", "a corgi", *models, "--sampler", "ancestral", "--steps", "3", "--upsample_sampler", "ddim"]
    assert main([*argv, "--seed", "0", "--no_progress", "-o", str(output)]) == 0
    base = GlidePipeline.from_pretrained(converted_folders["base"])
    upsampler = GlideUpsamplePipeline.from_pretrained(converted_folders["upsample"])
    assert (base.scheduler.config.sampler, base.scheduler.config.timestep_respacing) == ("ddpm", "100")
    assert (upsampler.scheduler.config.sampler, upsampler.scheduler.config.timestep_respacing) == ("ddim", "fast27")
    generator = torch.Generator().manual_seed(0)
    low = base("a corgi", num_inference_steps=3, generator=generator).images
    high = upsampler("a corgi", image=low, generator=generator).images
    assert upsampler.num_timesteps == 27
    assert np.array_equal(pixels(tmp_path / "notebook-low.png"), np.asarray(low[0]))
    assert np.array_equal(pixels(output), np.asarray(high[0]))


def test_img2img_and_inpaint_samplers(tmp_path):
    """img2img takes --sampler like generate; inpaint keeps the model's own sampler unless --sampler is given."""
    inputs = write_inputs(tmp_path)
    common = ["--image", str(inputs["image"]), "--seed", "0", "--steps", "4", "--no_progress"]
    assert (
        main(["img2img", PROMPT, *common, "--strength", "0.5", "--sampler", "ddim", "-o", str(tmp_path / "a.png")])
        == 0
    )
    pipe = embedded(GlideImg2ImgPipeline, "base", "ddim")
    image = PIL.Image.open(inputs["image"])
    expected = pipe(
        PROMPT, image=image, strength=0.5, num_inference_steps=4, generator=torch.Generator().manual_seed(0)
    )
    assert np.array_equal(pixels(tmp_path / "a.png"), np.asarray(expected.images[0]))

    masked = [*common, "--mask", str(inputs["mask"])]
    assert main(["inpaint", PROMPT, *masked, "-o", str(tmp_path / "b.png")]) == 0
    assert main(["inpaint", PROMPT, *masked, "--sampler", "dpm++", "-o", str(tmp_path / "c.png")]) == 0
    mask = PIL.Image.open(inputs["mask"])
    for name, sampler in (("b.png", None), ("c.png", "dpm++")):
        generator = torch.Generator().manual_seed(0)
        pipe = embedded(GlideInpaintPipeline, "base-inpaint", sampler)
        expected = pipe(PROMPT, image=image, mask_image=mask, num_inference_steps=4, generator=generator)
        assert np.array_equal(pixels(tmp_path / name), np.asarray(expected.images[0])), name


def test_threads(tmp_path):
    threads = torch.get_num_threads()
    try:
        wanted = str(threads + 1)  # not the default
        argv = [
            "generate",
            PROMPT,
            "--steps",
            "1",
            "--threads",
            wanted,
            "--no_progress",
            "-o",
            str(tmp_path / "t.png"),
        ]
        assert main(argv) == 0
        assert torch.get_num_threads() == threads + 1
    finally:
        torch.set_num_threads(threads)


USER_ERRORS = {
    "folder without model_index.json": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--model", tmp],
        ["is not a diffusers pipeline folder (it has no model_index.json)"],
    ),
    "upsampler given to generate": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--model", folders["upsample"]],
        ["holds a GlideUpsamplePipeline, not a GlidePipeline"],
    ),
    "inpaint model of the wrong class": (
        lambda tmp, folders, inputs: [
            "inpaint",
            PROMPT,
            "--image",
            inputs["image"],
            "--mask",
            inputs["mask"],
            "--model",
            folders["base"],
        ],
        ["holds a GlidePipeline, not a GlideInpaintPipeline"],
    ),
    "missing mask file": (
        lambda tmp, folders, inputs: [
            "inpaint",
            PROMPT,
            "--image",
            inputs["image"],
            "--mask",
            tmp / "missing.png",
            "--model",
            folders["base-inpaint"],
        ],
        ["mask file not found", "missing.png"],
    ),
    "all-black mask": (
        lambda tmp, folders, inputs: [
            "inpaint",
            PROMPT,
            "--image",
            inputs["image"],
            "--mask",
            inputs["black"],
            "--model",
            folders["base-inpaint"],
        ],
        ["`mask_image` 0 has nothing to repaint at the model's", "White / 1 marks the pixels to repaint"],
    ),
    "unreadable image": (
        lambda tmp, folders, inputs: [
            "upsample",
            PROMPT,
            "--image",
            folders["upsample"] / "model_index.json",
            "--model",
            folders["upsample"],
        ],
        ["model_index.json is not a PNG, JPEG, WebP, BMP, GIF or TIFF image."],
    ),
    "--clip folder of something else": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--clip", folders["base"]],
        [
            "is not a noised-CLIP folder",
            "clip_image_encoder/, clip_text_encoder/, clip_tokenizer/",
            "--model_type clip",
        ],
    ),
    "missing --clip folder": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--clip", tmp / "no" / "clip"],
        ["no/clip is neither a local noised-CLIP folder nor a Hub repo id"],
    ),
    "CLIP guidance without a CLIP": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--clip_guidance_scale", "3", "-o", tmp / "x.png"],
        ["`clip_guidance_scale` > 0 needs the noised CLIP", "--model_type clip"],
    ),
    "meta device": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--device", "meta", "-o", tmp / "x.png"],
        ["--device meta: cannot sample on a 'meta' device; use one of cpu, cuda, mps, xpu."],
    ),
    "output is a folder": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "-o", tmp],
        ["is a folder: give a file name such as"],
    ),
    "output under a file": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "-o", inputs["image"] / "x.png"],
        ["image.png is a file, not a folder."],
    ),
    "output on a read-only file system": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "-o", "/proc/glide.png"],
        ["Cannot write the output '/proc/glide.png': cannot create files in /proc"],
    ),
    "a thousand million images": (
        lambda tmp, folders, inputs: ["generate", PROMPT, "--num_images", "1000000000", "-o", tmp / "x.png"],
        ["--num_images 1000000000 is too many for one run: at most", "Run the command several times with different"],
    ),
    "undecodable bytes in the prompt": (
        lambda tmp, folders, inputs: ["generate", "a red \udcff circle", "-o", tmp / "x.png"],
        ["`prompt[0]` is not valid text: '\\udcff' at position 6 is a lone surrogate"],
    ),
    "missing checkpoint": (
        lambda tmp, folders, inputs: [
            "convert",
            "--checkpoint_path",
            tmp / "missing.pt",
            "--model_type",
            "base",
            "--vocab_dir",
            TOKENIZERS_DIR,
            "--dump_path",
            tmp / "out",
        ],
        ["missing.pt"],
    ),
    "edit without a prompt": (
        lambda tmp, folders, inputs: ["edit", "--image", inputs["image"], "--edit", inputs["mask"]],
        ["--edit 1 (", "give MASK PROMPT [STRENGTH], e.g. --edit mask.png"],
    ),
    "edit strength that is not a number": (
        lambda tmp, folders, inputs: ["edit", "--image", inputs["image"], "--edit", inputs["mask"], "a", "strong"],
        ["--edit 1: STRENGTH expected a number, got 'strong'"],
    ),
    "edit mask file missing": (
        lambda tmp, folders, inputs: ["edit", "--image", inputs["image"], "--edit", tmp / "nope.png", PROMPT],
        ["mask of edit 1 file not found:", "nope.png"],
    ),
    "second edit with nothing to repaint": (
        lambda tmp, folders, inputs: [
            "edit",
            "--image",
            inputs["image"],
            "--steps",
            "2",
            "--edit",
            inputs["mask"],
            PROMPT,
            "--edit",
            inputs["black"],
            PROMPT,
        ],
        ["edit 2 of 2: `mask_image` 0 has nothing to repaint"],
    ),  # fmt: skip
    "img2img strength zero": (
        lambda tmp, folders, inputs: ["img2img", PROMPT, "--image", inputs["image"], "--strength", "0"],
        ["`strength` must be in (0, 1], got 0"],
    ),
    "img2img with an inpainting model": (
        lambda tmp, folders, inputs: [
            "img2img",
            PROMPT,
            "--image",
            inputs["image"],
            "--model",
            folders["base-inpaint"],
        ],
        ["holds a GlideInpaintPipeline, not a GlideImg2ImgPipeline"],
    ),
    "inpaint strength above one": (
        lambda tmp, folders, inputs: [
            "inpaint",
            PROMPT,
            "--image",
            inputs["image"],
            "--mask",
            inputs["mask"],
            "--strength",
            "1.5",
        ],
        ["`strength` must be in [0, 1], got 1.5"],
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_errors(case, tmp_path, converted_folders, capsys):
    inputs = write_inputs(tmp_path)
    before = sorted(tmp_path.iterdir())
    make_argv, expected = USER_ERRORS[case]
    assert main([str(a) for a in make_argv(tmp_path, converted_folders, inputs)]) == 2
    # errors found by the pipelines come after the model's loading progress bar: the error itself is one line
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: ") and "Traceback" not in capsys.readouterr().err, err
    for text in expected:
        assert text in err
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_every_command_runs_offline_on_the_embedded_models(script, tmp_path):
    """Without --model, inpaint and upsample use the embedded models of their stage; 'default' names the embedded
    upsampler and noised CLIP."""
    inputs = write_inputs(tmp_path)
    common = ["--seed", 0, "--no_progress", "--steps", 2]
    rng = np.random.default_rng(1)
    big, big_mask = tmp_path / "big.png", tmp_path / "big_mask.png"
    PIL.Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(big)
    mask = np.zeros((128, 128), np.uint8)
    mask[32:96, 40:100] = 255
    PIL.Image.fromarray(mask).save(big_mask)
    results = run_together(
        script,
        ["inpaint", PROMPT, "--image", inputs["image"], "--mask", inputs["mask"], *common, "-o", "inpainted.png"],
        ["upsample", PROMPT, "--image", inputs["low"], *common, "-o", "up.png"],
        ["upsample", PROMPT, "--image", inputs["low"], "--inpaint_image", big, "--mask", big_mask, *common, "-o",
         "edit.png"],
        ["generate", PROMPT, "--upsampler", "default", "--upsample_steps", 2, "--clip", "default", *common, "-o",
         "cascade.png"],
        cwd=tmp_path,
    )  # fmt: skip
    inpainted, upsampled, edited, written = map(check_quiet, results)
    assert (inpainted, upsampled, edited) == (["inpainted.png"], ["up.png"], ["edit.png"])
    png(tmp_path / "inpainted.png", 32)
    png(tmp_path / "up.png", 128)
    with PIL.Image.open(tmp_path / "edit.png") as image, PIL.Image.open(big) as original:
        kept = mask == 0
        assert (np.asarray(image)[kept] == np.asarray(original)[kept]).all()  # the upsample-inpaint model's
        assert (np.asarray(image)[~kept] != np.asarray(original)[~kept]).any()
    assert written == ["cascade-low.png", "cascade.png"]
    png(tmp_path / written[0], 32)
    png(tmp_path / written[1], 128)


def test_img2img_inpaint_strength_and_iterative_edit_on_the_embedded_models(tmp_path, capsys):
    common = ["--seed", 0, "--no_progress"]
    rng = np.random.default_rng(2)
    start = tmp_path / "start.png"
    PIL.Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(start)

    def img2img(strength, name):
        return cli_ok(capsys, "img2img", PROMPT, "--image", start, "--strength", strength, "--steps", 4, *common,
                      "-o", tmp_path / name)  # fmt: skip

    # img2img at strength 1 is text-to-image from the same seed: the same PNG
    (full,) = img2img(1, "full.png")
    (generated,) = cli_ok(capsys, "generate", PROMPT, "--steps", 4, *common, "-o", tmp_path / "gen.png")
    assert np.array_equal(pixels(full), pixels(generated))
    (partial,) = img2img(0.5, "half.png")
    png(Path(partial), 32)

    masks = []
    for k, (top, left) in enumerate([(2, 2), (18, 16)]):
        mask = np.zeros((32, 32), np.uint8)
        mask[top : top + 12, left : left + 12] = 255
        masks.append(mask)
        PIL.Image.fromarray(mask).save(tmp_path / f"m{k}.png")
    (inpainted,) = cli_ok(
        capsys, "inpaint", PROMPT, "--image", start, "--mask", tmp_path / "m0.png", "--strength", 0.5,
        "--steps", 4, *common, "-o", tmp_path / "sketch.png",
    )  # fmt: skip
    png(Path(inpainted), 32)

    written = cli_ok(
        capsys, "edit", "--image", start, "--edit", tmp_path / "m0.png", "a red square on a white background",
        "--edit", tmp_path / "m1.png", "a blue circle on a white background", 0.8, "--save_steps",
        "--steps", 4, *common, "-o", tmp_path / "edited.png",
    )  # fmt: skip
    assert written == [str(tmp_path / "edited-step1.png"), str(tmp_path / "edited.png")]
    original, step1, final = pixels(start), pixels(written[0]), pixels(written[1])
    outside_both = (masks[0] == 0) & (masks[1] == 0)
    assert np.array_equal(final[outside_both], original[outside_both])
    assert np.array_equal(step1[masks[0] == 0], original[masks[0] == 0])
    assert np.array_equal(final[masks[1] == 0], step1[masks[1] == 0])  # the second edit kept the first's result
    assert not np.array_equal(final[masks[1] > 0], step1[masks[1] > 0])
