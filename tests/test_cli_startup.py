"""The command line starts without torch: `import diffusers_glide`, help, --version and usage errors import neither
torch, diffusers, transformers nor gradio (they take seconds to import). The flags' defaults,
written out for that reason, are checked against the pipelines they mirror."""

import inspect
import os
import subprocess
import sys

import pytest
import torch

import diffusers_glide
from diffusers_glide import pipelines
from diffusers_glide.cli import build_parser
from diffusers_glide.commands.arguments import DTYPE_NAMES, PIPELINE_DEFAULTS
from diffusers_glide.conversion.convert import DTYPES

HEAVY = ("torch", "diffusers", "transformers", "gradio")

# Each command in a fresh interpreter; prints the exit codes, then the heavy modules that got imported.
PROBE = """
import contextlib, io, sys
from diffusers_glide.cli import main
codes = []
for argv in {argvs!r}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(main(argv))
print(codes)
print(sorted(name for name in {heavy!r} if name in sys.modules))
"""


def _probe(*argvs: list[str]) -> list[str]:
    code = PROBE.format(argvs=list(argvs), heavy=HEAVY)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_help_version_and_usage_errors_import_no_heavy_module():
    commands = ["generate", "inpaint", "img2img", "edit", "upsample", "serve", "download"]
    output = _probe(
        ["--help"],
        ["--version"],
        [],
        *([command, "--help"] for command in commands),
        ["generate", "a red circle", "--steps", "0"],  # usage errors
        ["generate", "a red circle", "--sampler", "euler"],
        ["upsample", "x", "--threads", "two"],
        ["serve", "--threads", "0"],
        ["serve", "--port", "99999"],
        ["img2img", "x", "--image", "x.png", "--seed", str(2**70)],
        ["nonsense"],
    )
    assert output == [str([0, 0, 2, *[0] * len(commands), 2, 2, 2, 2, 2, 2, 2]), "[]"]


def test_the_whole_parser_has_the_trainer_and_converter_flags():
    # `main` adds them only when the command line names their command: their modules import torch
    parser = build_parser()
    args = parser.parse_args(["train", "--output_dir", "out", "--max_train_steps", "3"])
    assert (args.subcommand, args.max_train_steps) == ("train", 3)
    args = parser.parse_args(["convert", "--checkpoint_path", "a.pt", "--model_type", "base", "--vocab_dir", "v"])
    assert (args.subcommand, args.model_type) == ("convert", "base")


def test_public_names():
    assert diffusers_glide.__all__ == [
        "GlideCLIPImageEncoder",
        "GlideCLIPTextEncoder",
        "GlideImg2ImgPipeline",
        "GlideInpaintPipeline",
        "GlidePipeline",
        "GlideScheduler",
        "GlideSchedulerOutput",
        "GlideTextEncoder",
        "GlideUNet2DModel",
        "GlideUpsamplePipeline",
        "InpaintEdit",
        "apply_edits",
        "Cascade",
        "build_clip_tokenizer",
        "build_glide_tokenizer",
        "build_small_clip_tokenizer",
        "embedded_model_path",
        "openai_model_path",
        "tokenize_clip_prompts",
        "tokenize_prompts",
    ]
    assert set(diffusers_glide.__all__) <= set(dir(diffusers_glide))
    assert diffusers_glide.GlidePipeline is pipelines.GlidePipeline
    assert diffusers_glide.apply_edits is pipelines.apply_edits
    assert diffusers_glide.Cascade.__module__ == "diffusers_glide.cascade"
    assert diffusers_glide.openai_model_path.__module__ == "diffusers_glide.openai_checkpoints"
    assert diffusers_glide.pipelines is pipelines  # submodules too, as before
    with pytest.raises(AttributeError, match="module 'diffusers_glide' has no attribute 'GlidePipelin'"):
        diffusers_glide.GlidePipelin  # noqa: B018


@pytest.mark.parametrize("pipeline_class", sorted(PIPELINE_DEFAULTS))
def test_flag_defaults_are_the_pipelines(pipeline_class):
    parameters = inspect.signature(getattr(pipelines, pipeline_class).__call__).parameters
    for name, value in PIPELINE_DEFAULTS[pipeline_class].items():
        assert parameters[name].default == value, (pipeline_class, name)


def test_dtype_names_are_the_converters():
    assert {name: getattr(torch, name) for name in DTYPE_NAMES} == DTYPES
