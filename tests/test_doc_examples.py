"""Every example of the guides that runs an embedded model is a claim about its image: this runs each one as the
guide writes it and reads the image back with the shapes scorer.

The code comes from the Markdown itself (the fenced block, or the line, holding a unique piece of text), so an edited
example is what runs. Each output image is read with `diffusers_glide.shapes.scoring.read_image` and compared with
the scene its caption describes (`scene_from_caption`): background colour, shape colour and shape, and the position
when the caption names one. The expected captions are the examples' own text, never the models' output. Where a
guide says pixels are kept (inpainting, edits), the pixels outside the mask must equal the input's exactly (uint8).

The command lines are run with `diffusers_glide.cli.main` in one folder per guide, in the guide's order (a command
may read an earlier one's output), after the guide's own snippet that writes the input images; the Python blocks
run in a fresh namespace with `torch.manual_seed(0)` first.

Examples that only name OpenAI's released models or converted folders (`--model openai`, "glide-base") are not
run here: those files are not available offline.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from test_docs import REPO_ROOT, split_fences

from diffusers_glide.cli import build_parser, main
from diffusers_glide.shapes import scene_from_caption
from diffusers_glide.shapes.scoring import read_image

# one worker holds the embedded models and the module's folders (`pytest -n auto --dist loadgroup`)
pytestmark = pytest.mark.xdist_group("doc_examples")

README = REPO_ROOT / "README.md"
COMMAND_LINE = REPO_ROOT / "docs" / "command_line.md"
PIPELINES = REPO_ROOT / "docs" / "pipelines.md"
EMBEDDED_MODELS = REPO_ROOT / "docs" / "embedded_models.md"
CARDS = REPO_ROOT / "src" / "diffusers_glide" / "embedded"

# command_line.md's Python snippet that writes in.png, mask.png, ... (the inputs of its editing commands)
INPUTS_SNIPPET = 'save(image, "in.png")'
# the Python examples that run embedded models: (guide, a piece of text unique to the block)
README_CASCADE = (README, 'GlideUpsamplePipeline.from_pretrained(embedded_model_path("upsample"))')
PIPELINES_CASCADE = (PIPELINES, 'cascade = Cascade.from_pretrained(upsampler="default")')
PIPELINES_EDITING = (PIPELINES, "steps = apply_edits(")
EMBEDDED_MODELS_BASE = (EMBEDDED_MODELS, "pipe = GlidePipeline.from_pretrained(embedded_model_path())")
CLIP_CARD = (CARDS / "glide-shapes-clip-32" / "README.md", "pipe.load_clip_guidance(")
UPSAMPLE_CARD = (CARDS / "glide-shapes-upsample-128" / "README.md", 'embedded_model_path("upsample")')
INPAINT_CARD = (CARDS / "glide-shapes-inpaint-32" / "README.md", 'embedded_model_path("base-inpaint")')
UPSAMPLE_INPAINT_CARD = (CARDS / "glide-shapes-upsample-inpaint-128" / "README.md", 'model_path("upsample-inpaint")')
PYTHON_EXAMPLES = [
    README_CASCADE,
    PIPELINES_CASCADE,
    PIPELINES_EDITING,
    EMBEDDED_MODELS_BASE,
    CLIP_CARD,
    UPSAMPLE_CARD,
    INPAINT_CARD,
    UPSAMPLE_INPAINT_CARD,
]


# --- reading the guides ------------------------------------------------------------------------------------------


def doc_name(path: Path) -> str:
    return path.relative_to(REPO_ROOT).as_posix()


def fenced_block(path: Path, unique: str) -> str:
    """The code of the one fenced block of `path` that holds `unique`."""
    _, blocks = split_fences(path.read_text(encoding="utf-8"))
    found = [block for block in blocks if unique in block.code]
    assert len(found) == 1, f"{doc_name(path)}: {len(found)} fenced blocks hold {unique!r}, expected 1"
    return textwrap.dedent(found[0].code)


def command_lines(path: Path, unique: str) -> list[str]:
    """The `diffusers-glide ...` commands of the block of `path` holding `unique`, in order, from `diffusers-glide` on
    (a shell prefix such as `pip install ... &&` is left out)."""
    commands = []
    for line in fenced_block(path, unique).split("\n"):
        if "diffusers-glide " in line and not line.lstrip().startswith("#"):
            command = line[line.index("diffusers-glide ") :]
            assert "&&" not in command and "|" not in command, f"{doc_name(path)}: cannot run {line!r}"
            commands.append(command)
    assert commands, f"{doc_name(path)}: no diffusers-glide command in the block holding {unique!r}"
    return commands


# --- reading the images -------------------------------------------------------------------------------------------


def pixels(image) -> np.ndarray:
    """uint8 (H, W, 3) of a PIL image, a path, or a tensor (1 or no batch, 3, H, W) / array (H, W, 3) in [0, 1]."""
    if isinstance(image, (str, os.PathLike)):
        with PIL.Image.open(image) as opened:
            return np.asarray(opened.convert("RGB"))
    if isinstance(image, PIL.Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu()
        if array.ndim == 4:
            assert array.shape[0] == 1, f"expected one image, got a batch of {array.shape[0]}"
            array = array[0]
        image = array.permute(1, 2, 0).numpy()
    return (np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255).round().astype(np.uint8)


def repaint_mask(mask, size: int) -> np.ndarray:
    """bool (size, size), True where `mask` (a path, PIL image, or tensor/array in [0, 1]; white = repaint) repaints,
    resized with nearest neighbour as the pipelines resize masks."""
    if isinstance(mask, (str, os.PathLike)):
        with PIL.Image.open(mask) as opened:
            array = np.asarray(opened.convert("L"), dtype=np.float32) / 255
    elif isinstance(mask, torch.Tensor):
        array = mask.detach().float().cpu().reshape(mask.shape[-2:]).numpy()
    else:
        array = np.asarray(mask, dtype=np.float32)
    repaint = array >= 0.5
    assert size % repaint.shape[0] == 0, f"mask of {repaint.shape} for a {size}x{size} image"
    factor = size // repaint.shape[0]
    return np.kron(repaint, np.ones((factor, factor), dtype=bool))


def check_caption(image, caption: str, example: str) -> list[str]:
    """What the scorer reads in `image` that `caption` does not say (an empty list: the image shows the caption)."""
    scene = scene_from_caption(caption)
    reading = read_image(pixels(image).astype(np.float32) / 255)
    expected = {"background": scene.background, "color": scene.color, "shape": scene.shape}
    if scene.position is not None:
        expected["position"] = scene.position
    wrong = [name for name, value in expected.items() if getattr(reading, name) != value]
    if wrong:
        return [f"{example}: caption {caption!r}, {'/'.join(wrong)} wrong; the image reads {reading}"]
    print(f"{example}: caption {caption!r} reads {reading}")
    return []


def check_kept(output, original, mask, example: str) -> list[str]:
    """The pixels outside `mask` (white = repaint) of `output` are `original`'s, exactly."""
    output, original = pixels(output), pixels(original)
    assert output.shape == original.shape, f"{example}: output {output.shape}, input {original.shape}"
    kept = ~repaint_mask(mask, output.shape[0])
    changed = int((output[kept] != original[kept]).any(axis=-1).sum())
    return [f"{example}: {changed} of {int(kept.sum())} kept pixels changed"] if changed else []


def check_size(image, size: int, example: str) -> list[str]:
    height, width = pixels(image).shape[:2]
    return [] if (height, width) == (size, size) else [f"{example}: {width}x{height}, expected {size}x{size}"]


# --- the command lines --------------------------------------------------------------------------------------------

# (guide, a piece of text unique to the block): every diffusers-glide command of these blocks runs an embedded model
CLI_BLOCKS = [
    (README, 'diffusers-glide generate "a red circle on a blue background" -o red_circle.png'),
    (README, "--upsampler default -o shapes.png"),
    (COMMAND_LINE, "--upsampler default -o shapes.png"),
    (COMMAND_LINE, "--image in.png --mask mask.png"),
]
CLI_EXAMPLES = [(path, command) for path, unique in CLI_BLOCKS for command in command_lines(path, unique)]


@dataclass
class CommandRun:
    folder: Path
    exit_code: int | None
    error: str  # the exception, when `main` raised one (its error messages are in the captured stderr)
    problems: list[str]  # what its outputs, read right after it ran, show against its caption
    readings: str  # what the checks printed: the readings of the outputs that show their caption


def run_guide_commands(path: Path, folder: Path) -> dict[str, CommandRun]:
    """Runs the guide's input snippet (command_line.md) and then its commands, in order, in `folder`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        if path == COMMAND_LINE:
            exec(compile(fenced_block(COMMAND_LINE, INPUTS_SNIPPET), "command_line.md", "exec"), {})
        runs = {}
        for guide, command in CLI_EXAMPLES:
            if guide != path:
                continue
            args = shlex.split(command, comments=True)[1:]
            # the guides' commands are checked at seed 0 when they name none
            args += [] if "--seed" in args else ["--seed", "0"]
            try:
                exit_code, error = main([*args, "--no_progress"]), ""
            except (Exception, SystemExit) as exception:  # reported by the command's test; the next one runs
                exit_code, error = None, repr(exception)
            printed = io.StringIO()
            try:  # read now: a later command may write the same file
                with contextlib.redirect_stdout(printed):
                    problems = command_checks(command, folder) if exit_code == 0 else []
            except Exception as exception:
                problems = [f"{command}: its outputs cannot be checked: {exception!r}"]
            runs[command] = CommandRun(folder, exit_code, error, problems, printed.getvalue())
        return runs


@pytest.fixture(scope="module")
def guide_runs(tmp_path_factory):
    """guide -> {command: CommandRun}: each guide's commands, run once, in order, in a folder of their own."""
    runs = {}

    def get(path: Path) -> dict[str, CommandRun]:
        if path not in runs:
            runs[path] = run_guide_commands(path, tmp_path_factory.mktemp(path.stem))
        return runs[path]

    return get


def stem_path(output: Path, tail: str) -> Path:
    return output.with_name(f"{output.stem}{tail}{output.suffix}")


def command_checks(command: str, folder: Path) -> list[str]:
    """The caption and kept-pixel checks of one command's outputs in `folder`."""
    argv = shlex.split(command, comments=True)[1:]
    args = build_parser(argv).parse_args(argv)
    output = folder / args.output
    problems = []
    if args.subcommand == "edit":
        assert args.save_steps, "an edit chain without --save_steps: its steps cannot be checked"
        previous = folder / args.image
        for k, (mask, caption, *_) in enumerate(args.edits, start=1):
            step = output if k == len(args.edits) else stem_path(output, f"-step{k}")
            problems += check_caption(step, caption, f"{command} [{step.name}]")
            problems += check_kept(step, previous, folder / mask, f"{command} [{step.name}, outside {mask}]")
            previous = step
        return problems
    if args.subcommand == "generate":
        assert not (args.num_images > 1 and args.upsampler), "not a documented combination"
        if args.num_images > 1:
            outputs = [stem_path(output, f"-{i}") for i in range(args.num_images)]
        else:
            outputs = [output] + ([stem_path(output, "-low")] if args.upsampler else [])
        sizes = [128 if args.upsampler and path == output else 32 for path in outputs]
    else:
        outputs, sizes = [output], [128 if args.subcommand == "upsample" else 32]
    for path, size in zip(outputs, sizes, strict=True):
        problems += check_size(path, size, f"{command} [{path.name}]")
        problems += check_caption(path, args.prompt, f"{command} [{path.name}]")
    if args.subcommand == "inpaint":  # the mask's outside is the --image's
        problems += check_kept(output, folder / args.image, folder / args.mask, f"{command} [outside {args.mask}]")
    if args.subcommand == "upsample" and args.inpaint_image is not None:  # and the --inpaint_image's
        problems += check_kept(output, folder / args.inpaint_image, folder / args.mask, f"{command} [kept]")
    return problems


def example_id(path: Path, command: str) -> str:
    """e.g. "docs/command_line.md:inpaint->out.png": the guide, the subcommand and its output."""
    argv = shlex.split(command, comments=True)[1:]
    args = build_parser(argv).parse_args(argv)
    many = f" x{args.num_images}" if getattr(args, "num_images", 1) > 1 else ""
    return f"{doc_name(path)}:{argv[0]}->{args.output}{many}"


@pytest.mark.parametrize(
    "path, command",
    CLI_EXAMPLES,
    ids=[example_id(path, command) for path, command in CLI_EXAMPLES],
)
def test_command_line_example(guide_runs, path, command):
    run = guide_runs(path)[command]
    print(run.readings, end="")
    assert run.exit_code == 0, f"{doc_name(path)}: {command!r} failed ({run.exit_code}): {run.error}"
    assert not run.problems, f"{doc_name(path)}:\n" + "\n".join(run.problems)


def test_the_inputs_are_what_command_line_md_says(guide_runs):
    """in.png is "a blue circle on a white background" (32x32; in_128.png at 128x128); mask.png covers the circle,
    mask1.png the circle, mask2.png the bottom three quarters; sketched.png is in.png outside mask.png and a red blob
    inside it (all as the guide's text says)."""
    folder = next(iter(guide_runs(COMMAND_LINE).values())).folder
    problems = check_caption(folder / "in.png", "a blue circle on a white background", "in.png")
    problems += check_caption(folder / "in_128.png", "a blue circle on a white background", "in_128.png")
    problems += check_size(folder / "in.png", 32, "in.png") + check_size(folder / "in_128.png", 128, "in_128.png")
    circle = (pixels(folder / "in.png") != pixels(folder / "in.png")[0, 0]).any(axis=-1)  # every non-white pixel
    for name in ("mask.png", "mask1.png"):
        repaint = repaint_mask(folder / name, 32)
        assert repaint[circle].all() and repaint.mean() < 0.4, f"{name} does not cover the circle (alone)"
    assert repaint_mask(folder / "mask2.png", 32).mean() == 0.75 and repaint_mask(folder / "mask2.png", 32)[8:].all()
    assert repaint_mask(folder / "mask2.png", 32)[circle].all()  # the step before's square is inside it too
    problems += check_kept(folder / "sketched.png", folder / "in.png", folder / "mask.png", "sketched.png")
    problems += check_caption(folder / "sketched.png", "a red circle on a white background", "sketched.png (the blob)")
    assert not problems, "\n".join(problems)


# --- the Python blocks --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc_inputs(guide_runs):
    """The images command_line.md's snippet writes (the model cards' examples leave their inputs to the reader: they
    get the ones the command line's guide makes for the same caption)."""
    return next(iter(guide_runs(COMMAND_LINE).values())).folder


def run_block(code: str, name: str, folder: Path, namespace: dict | None = None) -> dict:
    """Executes `code` in `folder` in a fresh namespace (plus `namespace`), after `torch.manual_seed(0)`."""
    namespace = dict(namespace or {})
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        torch.manual_seed(0)
        exec(compile(code, name, "exec"), namespace)
    return namespace


def caption_in(code: str, caption: str, name: str) -> str:
    """`caption`, which the example's code must hold as a string literal (the expectation is the example's text)."""
    assert f'"{caption}"' in code, f"{name}: the example no longer holds the caption {caption!r}; update this test"
    return caption


def test_readme_cascade(tmp_path):
    name = "README.md (the whole cascade in three lines)"
    code = fenced_block(*README_CASCADE)
    caption = caption_in(code, "a red circle on a blue background", name)
    ns = run_block(code, name, tmp_path)
    problems = check_size(ns["low"], 32, f"{name} low") + check_size(ns["image"], 128, f"{name} image")
    problems += check_caption(ns["low"], caption, f"{name} low") + check_caption(ns["image"], caption, f"{name} image")
    assert not problems, "\n".join(problems)


def test_pipelines_cascade(tmp_path, capsys):
    name = "docs/pipelines.md (the cascade)"
    code = fenced_block(*PIPELINES_CASCADE)
    caption = caption_in(code, "a red circle on a blue background", name)
    ns = run_block(code, name, tmp_path)
    assert "(32, 32) (128, 128)" in capsys.readouterr().out  # what the example's comment says it prints
    out = ns["out"]
    problems = check_caption(out.low_images[0], caption, f"{name} low_images[0]")
    problems += check_caption(out.images[0], caption, f"{name} images[0]")
    assert not problems, "\n".join(problems)


def test_pipelines_editing(tmp_path):
    name = "docs/pipelines.md (editing)"
    code = fenced_block(*PIPELINES_EDITING)
    ns = run_block(code, name, tmp_path)
    problems = check_caption(ns["image"], caption_in(code, "a blue circle on a red background", name), f"{name} image")
    problems += check_caption(
        ns["recoloured"], caption_in(code, "a red circle on a blue background", name), f"{name} recoloured (img2img)"
    )
    problems += check_caption(ns["edited"], caption_in(code, "a white square on a red background", name), name)
    problems += check_kept(ns["edited"], ns["sketched"], ns["mask"], f"{name} edited (sketch), outside mask")
    steps = ns["steps"]
    assert len(steps) == 2 and ns["final"] is steps[-1]
    first = caption_in(code, "a green circle on a red background", name)
    last = caption_in(code, "a yellow square on a red background at the top", name)
    problems += check_caption(steps[0], first, f"{name} steps[0]") + check_caption(steps[1], last, f"{name} steps[1]")
    problems += check_kept(steps[0], ns["image"], ns["mask"], f"{name} steps[0], outside mask")
    problems += check_kept(steps[1], steps[0], ns["top"], f"{name} steps[1], outside top")
    # "pixels outside every mask never change"
    problems += check_kept(steps[1], ns["image"], torch.maximum(ns["mask"], ns["top"]), f"{name} outside every mask")
    assert not problems, "\n".join(problems)


def test_embedded_models_example(tmp_path):
    name = "docs/embedded_models.md"
    code = fenced_block(*EMBEDDED_MODELS_BASE)
    caption = caption_in(code, "a green square on a yellow background at the top", name)
    ns = run_block(code, name, tmp_path)
    problems = check_size(ns["image"], 32, name) + check_caption(ns["image"], caption, name)
    assert not problems, "\n".join(problems)


def test_clip_model_card(tmp_path):
    name = "embedded/glide-shapes-clip-32/README.md"
    code = fenced_block(*CLIP_CARD)
    caption = caption_in(code, "a red circle on a blue background", name)  # the clip_prompt; the prompt is empty
    ns = run_block(code, name, tmp_path)
    problems = check_caption(ns["image"], caption, name)
    assert not problems, "\n".join(problems)


def test_upsample_model_card(tmp_path):
    name = "embedded/glide-shapes-upsample-128/README.md"
    code = fenced_block(*UPSAMPLE_CARD)
    caption = caption_in(code, "a red circle on a blue background", name)
    ns = run_block(code, name, tmp_path)
    problems = check_size(ns["image"], 128, name) + check_caption(ns["low"], caption, f"{name} low")
    problems += check_caption(ns["image"], caption, f"{name} image")
    assert not problems, "\n".join(problems)


def test_inpaint_model_cards(tmp_path, doc_inputs):
    """The two inpainting cards leave `image`, `mask`, `low_res` and `image_128` to the reader; they get
    command_line.md's in.png and mask.png (made for the cards' caption, "a red square on a white background"), the
    base-inpaint card's output as `low_res` (what the upsample-inpaint card says it is) and in_128.png."""
    name = "embedded/glide-shapes-inpaint-32/README.md"
    code = fenced_block(*INPAINT_CARD)
    caption = caption_in(code, "a red square on a white background", name)
    image, mask = PIL.Image.open(doc_inputs / "in.png"), PIL.Image.open(doc_inputs / "mask.png")
    low_res = run_block(code, name, tmp_path, {"image": image, "mask": mask})["image"]
    problems = check_caption(low_res, caption, name) + check_kept(low_res, image, mask, f"{name} outside the mask")

    name = "embedded/glide-shapes-upsample-inpaint-128/README.md"
    code = fenced_block(*UPSAMPLE_INPAINT_CARD)
    caption = caption_in(code, "a red square on a white background", name)
    image_128 = PIL.Image.open(doc_inputs / "in_128.png")
    ns = run_block(code, name, tmp_path, {"low_res": low_res, "image_128": image_128, "mask": mask})
    problems += check_size(ns["image"], 128, name) + check_caption(ns["image"], caption, name)
    problems += check_kept(ns["image"], image_128, mask, f"{name} outside the mask")
    assert not problems, "\n".join(problems)


# --- nothing left out ---------------------------------------------------------------------------------------------

GUIDES = [README, *sorted((REPO_ROOT / "docs").glob("*.md")), *sorted(CARDS.glob("*/README.md"))]
# a command that samples an image; without --model it runs the embedded models (--prompts: a file of the reader's)
SAMPLING_COMMAND = re.compile(r"diffusers-glide (generate|inpaint|upsample|img2img|edit) ")


def test_every_embedded_example_is_run():
    """Every command line and Python block of the guides that samples with an embedded model is one of the above."""
    run_commands = set(CLI_EXAMPLES)
    run_blocks = {fenced_block(path, unique) for path, unique in PYTHON_EXAMPLES}
    left_out = []
    for path in GUIDES:
        for block in split_fences(path.read_text(encoding="utf-8"))[1]:
            code = textwrap.dedent(block.code)
            if ("embedded_model_path(" in code or "Cascade.from_pretrained(" in code) and code not in run_blocks:
                left_out.append(f"{doc_name(path)}:{block.line}: a Python block")
            for offset, line in enumerate(code.split("\n")):
                match = SAMPLING_COMMAND.search(line)
                if match is None or line.lstrip().startswith("#") or "--model" in line or "--prompts" in line:
                    continue
                if (path, line[match.start() :]) not in run_commands:
                    left_out.append(f"{doc_name(path)}:{block.line + offset}: {line.strip()}")
    assert not left_out, "examples that run embedded models but no test:\n" + "\n".join(left_out)
