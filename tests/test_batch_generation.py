"""`diffusers-glide generate --prompts FILE --output_dir DIR`: one image per prompt x seed, resumable, sharded.

The expected images come from the pipelines themselves, called on each (prompt, seed) with a generator seeded with
that seed; the command runs in-process (`main`), except the two-process run, launched as users launch it.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

import diffusers_glide.cascade
from diffusers_glide import GlidePipeline, GlideUpsamplePipeline
from diffusers_glide.cli import main
from diffusers_glide.embedded import embedded_model_path
from diffusers_glide.folder_lock import LOCK_FILE
from diffusers_glide.samplers import use_sampler

# GLIDE's ancestral sampler draws noise at every step: from each image's own generator
STEPS = ["--sampler", "ancestral", "--steps", "2", "--no_progress"]
# line 2 is blank (skipped; the names keep the file's line numbers); line 4 is longer than the 32x32 model's text
# context, which the pipeline truncates as it does for one prompt
PROMPTS = [
    "a red circle on a blue background",
    "",
    "a green square",
    "a blue triangle on a white background " * 4,
]
NAMES = [f"{line:05d}-seed{seed}.png" for line in (1, 3, 4) for seed in (0, 7)]


def write_prompts(folder: Path, lines: list[str], name: str = "prompts.txt") -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def pixels(path: Path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.array(image)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def base():
    pipe = GlidePipeline.from_pretrained(embedded_model_path("base"))
    use_sampler(pipe, "ancestral")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def calls(monkeypatch) -> list[list[str]]:
    """The prompts of every text-to-image pipeline call the command makes."""
    made = []
    call = GlidePipeline.__call__

    def counted(pipe, prompt, *args, **kwargs):
        made.append(list(prompt))
        return call(pipe, prompt, *args, **kwargs)

    monkeypatch.setattr(GlidePipeline, "__call__", counted)
    return made


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if the command loads a model: user errors are found before."""
    # every command loads its models through cascade.load_pipeline (Cascade.from_pretrained too)
    monkeypatch.setattr(
        diffusers_glide.cascade, "load_pipeline", lambda *args, **kwargs: pytest.fail("a model was loaded")
    )


def run_ok(capsys, *args) -> list[str]:
    """Run the command in-process; the paths it printed."""
    code = main(["generate", *map(str, args)])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.split()


def test_one_image_per_prompt_and_seed_equal_to_single_calls(tmp_path, capsys, base, calls):
    prompts = write_prompts(tmp_path, PROMPTS)
    out = tmp_path / "out"
    printed = run_ok(capsys, "--prompts", prompts, "--output_dir", out, "--seeds", "0,7", *STEPS)
    assert printed == [str(out / name) for name in NAMES]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, *NAMES, "metadata.jsonl"]
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert records == [
        {"file_name": name, "prompt": PROMPTS[int(name[:5]) - 1], "seed": int(name[10:-4]), "width": 32, "height": 32}
        for name in NAMES
    ]
    assert len(calls) == 6  # --batch_size 1
    for record in records:
        expected = base(record["prompt"], num_inference_steps=2, generator=generator(record["seed"])).images[0]
        np.testing.assert_array_equal(pixels(out / record["file_name"]), np.array(expected))
    # and the single-prompt command with the same seed writes the same image
    single = tmp_path / "single.png"
    run_ok(capsys, PROMPTS[2], "--seed", "7", "-o", single, *STEPS)
    np.testing.assert_array_equal(pixels(single), pixels(out / "00003-seed7.png"))


def test_batches_give_each_image_its_own_seed(tmp_path, capsys, base, calls):
    prompts = write_prompts(tmp_path, PROMPTS[:3])
    out = tmp_path / "out"
    run_ok(
        capsys,
        "--prompts",
        prompts,
        "--output_dir",
        out,
        "--num_images",
        "2",
        "--seed",
        "5",
        "--batch_size",
        "3",
        *STEPS,
    )
    # jobs in file order, cut into batches of 3 whatever the process count
    batches = [[PROMPTS[0], PROMPTS[0], PROMPTS[2]], [PROMPTS[2]]]
    assert calls == batches
    expected = base(batches[0], num_inference_steps=2, generator=[generator(5), generator(6), generator(5)]).images
    expected += base(batches[1], num_inference_steps=2, generator=[generator(6)]).images
    names = ["00001-seed5.png", "00001-seed6.png", "00003-seed5.png", "00003-seed6.png"]
    for name, image in zip(names, expected, strict=True):
        np.testing.assert_array_equal(pixels(out / name), np.array(image))
    # the last batch holds one image: exactly the image of a call for it alone
    alone = base(PROMPTS[2], num_inference_steps=2, generator=generator(6)).images[0]
    np.testing.assert_array_equal(pixels(out / "00003-seed6.png"), np.array(alone))


def test_upsampled_images_and_their_low_resolution_images(tmp_path, capsys, base):
    prompts = write_prompts(tmp_path, ["a red circle on a blue background", "a green square"])
    out, low = tmp_path / "out", tmp_path / "low"
    upsampling = ["--upsampler", "default", "--upsample_steps", "2", "--low_output_dir", low]
    run_ok(capsys, "--prompts", prompts, "--output_dir", out, *upsampling, "--seed", "3", *STEPS)
    upsampler = GlideUpsamplePipeline.from_pretrained(embedded_model_path("upsample"))
    use_sampler(upsampler, "dpm++")  # --upsample_sampler's default
    upsampler.set_progress_bar_config(disable=True)
    for line, prompt in enumerate(["a red circle on a blue background", "a green square"], start=1):
        seeded = generator(3)  # the base sampling and then the upsampling draw from it, as `generate PROMPT` does
        small = base(prompt, num_inference_steps=2, generator=seeded).images
        large = upsampler(prompt, image=small, num_inference_steps=2, generator=seeded).images[0]
        name = f"{line:05d}-seed3.png"
        np.testing.assert_array_equal(pixels(low / name), np.array(small[0]))
        np.testing.assert_array_equal(pixels(out / name), np.array(large))
        assert pixels(out / name).shape == (128, 128, 3)
    # the same records, with each folder's image size
    for folder, size in ((low, 32), (out, 128)):
        records = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
        assert [(r["file_name"], r["width"], r["height"]) for r in records] == [
            ("00001-seed3.png", size, size),
            ("00002-seed3.png", size, size),
        ]


def test_resume_makes_only_the_missing_images(tmp_path, capsys, calls):
    prompts = write_prompts(tmp_path, PROMPTS[:3])
    out = tmp_path / "out"
    command = ["--prompts", prompts, "--output_dir", out, "--seeds", "0,7", *STEPS]
    run_ok(capsys, *command)
    assert len(calls) == 4
    before = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in out.iterdir()}
    deleted = pixels(out / "00003-seed0.png")
    (out / "00003-seed0.png").unlink()

    assert run_ok(capsys, *command) == [str(out / "00003-seed0.png")]
    assert calls[4:] == [[PROMPTS[2]]]
    np.testing.assert_array_equal(pixels(out / "00003-seed0.png"), deleted)
    after = {path.name: (path.stat().st_mtime_ns, path.read_bytes()) for path in out.iterdir()}
    assert {name: after[name] for name in before if name != "00003-seed0.png"} == {
        name: value for name, value in before.items() if name != "00003-seed0.png"
    }

    # a complete folder: nothing sampled, nothing written
    assert run_ok(capsys, *command) == []
    assert len(calls) == 5
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == {k: v[0] for k, v in after.items()}

    # more seeds extend the set: only the new images are made
    extended = ["--prompts", prompts, "--output_dir", out, "--seeds", "0,7,8", *STEPS]
    assert run_ok(capsys, *extended) == [str(out / "00001-seed8.png"), str(out / "00003-seed8.png")]
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 6


def test_resume_remakes_a_partial_batch_whole_and_writes_only_its_missing_image(tmp_path, capsys, calls):
    prompts = write_prompts(tmp_path, PROMPTS[:3])
    out = tmp_path / "out"
    command = ["--prompts", prompts, "--output_dir", out, "--seeds", "0,7", "--batch_size", "2", *STEPS]
    run_ok(capsys, *command)
    kept = (out / "00001-seed0.png").stat().st_mtime_ns
    deleted = pixels(out / "00001-seed7.png")
    (out / "00001-seed7.png").unlink()
    assert run_ok(capsys, *command) == [str(out / "00001-seed7.png")]
    # the batch keeps its size (so its rounding), and its other image is not rewritten
    assert calls[2:] == [[PROMPTS[0], PROMPTS[0]]]
    np.testing.assert_array_equal(pixels(out / "00001-seed7.png"), deleted)
    assert (out / "00001-seed0.png").stat().st_mtime_ns == kept


def _link_to_a_copy(path: Path, elsewhere: Path) -> None:
    copy = elsewhere / "copy.png"
    copy.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(copy)


def _save_other_image(path: Path, size: int, format_name: str = "PNG") -> None:
    PIL.Image.new("RGB", (size, size), (255, 0, 0)).save(path, format=format_name)


# Files named like an image that are not the complete PNG this command writes (its images are written atomically:
# these come from elsewhere, e.g. a copy cut short or an earlier run with another model)
NOT_DONE = {
    "empty file": lambda path, elsewhere: path.write_bytes(b""),
    "dangling symlink": lambda path, elsewhere: (path.unlink(), path.symlink_to(elsewhere / "missing.png")),
    "symlink to a complete copy": _link_to_a_copy,
    "cut in its pixel data": lambda path, elsewhere: path.write_bytes(path.read_bytes()[:150]),
    # Pillow decodes every pixel of this one: only its missing closing chunk (IEND) shows it is cut
    "cut after its pixels": lambda path, elsewhere: path.write_bytes(path.read_bytes()[:-12]),
    "PNG of another size": lambda path, elsewhere: _save_other_image(path, 16),
    "JPEG named .png": lambda path, elsewhere: _save_other_image(path, 32, "JPEG"),
}


@pytest.mark.parametrize("damage", list(NOT_DONE))
def test_resume_makes_again_an_image_that_is_not_a_complete_png(tmp_path, capsys, calls, damage):
    prompts = write_prompts(tmp_path, PROMPTS[:3])
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = ["--prompts", prompts, "--output_dir", out, "--seeds", "0,7", *STEPS]
    run_ok(capsys, *command)
    damaged = out / "00003-seed0.png"
    expected = pixels(damaged)
    NOT_DONE[damage](damaged, elsewhere)
    others = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.png") if p != damaged}
    outside = {p.name: p.read_bytes() for p in elsewhere.iterdir()}

    assert run_ok(capsys, *command) == [str(damaged)]
    assert calls[4:] == [[PROMPTS[2]]]
    assert damaged.is_file() and not damaged.is_symlink()
    np.testing.assert_array_equal(pixels(damaged), expected)
    # the complete images are kept untouched (same file, not rewritten), and a link's target is left as it was
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.png") if p != damaged} == others
    assert {p.name: p.read_bytes() for p in elsewhere.iterdir()} == outside


def test_metadata_without_sizes_still_resumes(tmp_path, capsys, calls):
    prompts = write_prompts(tmp_path, PROMPTS[:3])
    out = tmp_path / "out"
    command = ["--prompts", prompts, "--output_dir", out, "--seeds", "0,7", *STEPS]
    run_ok(capsys, *command)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    earlier = [{key: record[key] for key in ("file_name", "prompt", "seed")} for record in records]
    (out / "metadata.jsonl").write_text("".join(json.dumps(record) + "\n" for record in earlier))  # as 0.x wrote it
    (out / "00001-seed7.png").unlink()

    assert run_ok(capsys, *command) == [str(out / "00001-seed7.png")]
    assert [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()] == records


def test_a_folder_of_images_of_another_size_is_refused(tmp_path, capsys, no_model):
    out = tmp_path / "out"
    out.mkdir()
    listed = {"file_name": "00001-seed0.png", "prompt": "a red circle", "seed": 0, "width": 128, "height": 128}
    (out / "metadata.jsonl").write_text(json.dumps(listed) + "\n")
    prompts = write_prompts(tmp_path, ["a red circle"])
    now = {**listed, "width": 32, "height": 32}  # the embedded base model's, without --upsampler
    message = (
        f"{out}/metadata.jsonl lists 00001-seed0.png as {json.dumps(listed)}, but the prompt file and seeds now make "
        f"it as {json.dumps(now)}: give a new --output_dir."
    )
    check_error(capsys, ["--prompts", prompts, "--output_dir", out], message)


def _ended_pid() -> int:
    """The id of a process that has ended (and been waited for)."""
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_temporary_files_of_dead_writers_are_removed_and_a_live_writers_kept(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    dead = _ended_pid()
    stale = [out / f".00001-seed0.png.{dead}-0123abcd.tmp", out / f".metadata.jsonl.{dead}-89abcdef.tmp"]
    live = out / f".00001-seed0.png.{os.getppid()}-0123abcd.tmp"  # pytest's parent runs
    for path in [*stale, live]:
        path.write_bytes(b"\x89PNG cut")  # what a killed writer leaves
    prompts = write_prompts(tmp_path, ["a red circle"])
    run_ok(capsys, "--prompts", prompts, "--output_dir", out, *STEPS)
    assert not any(path.exists() for path in stale)
    assert live.read_bytes() == b"\x89PNG cut"


def test_two_processes_write_the_files_of_one_process(tmp_path, capsys, one_thread):
    prompts = write_prompts(tmp_path, ["a red circle on a blue background", "a green square", "a blue triangle"])
    # one thread in both runs: another thread count splits the kernels' sums differently, which moves pixels
    options = ["--prompts", prompts, "--seeds", "0,1", "--batch_size", "2", "--threads", "1", *STEPS]
    run_ok(capsys, *options, "--output_dir", tmp_path / "one")
    # `accelerate launch` runs torchrun; without a GPU the processes join over gloo, since --device is cpu
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29547",
        "-m", "diffusers_glide.cli", "generate", *map(str, options), "--output_dir", str(tmp_path / "two"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    # 6 images in 3 batches of 2: the first process takes two batches, the second one
    assert "6 images: 0 already made, 6 to make in 3 batch(es) of up to 2 on 2 process(es)." in result.stderr
    assert "process 0 of 2: wrote 4 image file(s)." in result.stderr
    assert "process 1 of 2: wrote 2 image file(s)." in result.stderr
    names = sorted(f"{line:05d}-seed{seed}.png" for line in (1, 2, 3) for seed in (0, 1))
    assert sorted(Path(line).name for line in result.stdout.split()) == names  # each image written once
    one, two = (sorted(p.name for p in (tmp_path / folder).iterdir()) for folder in ("one", "two"))
    assert one == two == [LOCK_FILE, *names, "metadata.jsonl"]
    for name in one:
        assert (tmp_path / "two" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------------------------
# One run per output folder


def in_use(folder: Path) -> str:
    return (
        f"error: --output_dir {folder} is in use by another diffusers-glide run (it holds the lock {folder / LOCK_FILE}"
        "): wait for that run to end, or give another --output_dir."
    )


def test_two_runs_started_together_on_one_folder(tmp_path):
    """Two runs on one folder once left a metadata.jsonl listing some of the folder's images: the second run to
    reach the lock now refuses. Each run prints its images' paths into a one-page pipe that the test reads only
    after one run has ended, so the run holding the lock stays blocked with it, whichever starts first."""
    fcntl = pytest.importorskip("fcntl")
    if not hasattr(fcntl, "F_SETPIPE_SZ"):
        pytest.skip("needs Linux's F_SETPIPE_SZ to make a pipe one page long")
    prompts = write_prompts(tmp_path, ["a red circle on a blue background", "a green square"])
    out = tmp_path / ("o" * 240) / ("o" * 240)  # long printed paths: a few fill the pipe
    seeds = {"small": range(8), "large": range(10)}  # 2 lines x 8 seeds of ~550 bytes: over two pages
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    runs = {}
    for name, run_seeds in seeds.items():
        read_end, write_end = os.pipe()
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)
        assert fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ) * 2 < 2 * 8 * len(f"{out}/00001-seed0.png\n")
        command = [
            sys.executable, "-m", "diffusers_glide.cli", "generate", "--prompts", str(prompts), "--output_dir",
            str(out), "--seeds", ",".join(map(str, run_seeds)), "--batch_size", "4", "--threads", "1", *STEPS,
        ]  # fmt: skip
        stderr = open(tmp_path / f"{name}.err", "w+")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(command, stdout=write_end, stderr=stderr, env=env)
        os.close(write_end)
        runs[name] = (process, os.fdopen(read_end), stderr)
    try:
        deadline = time.monotonic() + 120
        while all(process.poll() is None for process, _, _ in runs.values()) and time.monotonic() < deadline:
            time.sleep(0.2)
        ended = [name for name, (process, _, _) in runs.items() if process.poll() is not None]
        assert len(ended) == 1, f"runs ended within 120 s: {ended} (both blocked means both were writing)"
        (refused,) = ended
        (holder,) = set(runs) - {refused}
        assert runs[holder][0].poll() is None  # still blocked, holding the lock
        printed = runs[holder][1].read()  # unblocks it
        assert runs[holder][0].wait(timeout=300) == 0
    finally:
        for process, stdout, _stderr in runs.values():
            process.kill()
            process.wait()
            stdout.close()
    errors = {name: (tmp_path / f"{name}.err").read_text() for name in runs}
    for _, _, stderr in runs.values():
        stderr.close()
    assert runs[refused][0].returncode == 2
    assert errors[refused].splitlines()[-1] == in_use(out)
    made = [f"{line:05d}-seed{seed}.png" for line in (1, 2) for seed in seeds[holder]]
    assert printed.split() == [str(out / name) for name in made]
    # the folder holds the holder's images, all listed in its metadata, and nothing of the refused run
    listed = [json.loads(line)["file_name"] for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert listed == made
    assert sorted(path.name for path in out.glob("*.png")) == sorted(made)


def test_a_killed_run_leaves_no_lock_that_blocks_the_next(tmp_path, capsys):
    out = tmp_path / "out"
    script = (
        "import os, signal, sys\nfrom pathlib import Path\nfrom diffusers_glide.folder_lock import lock_folders\n"
        "with lock_folders({'--output_dir': Path(sys.argv[1])}):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(out)], capture_output=True, text=True, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / LOCK_FILE).is_file()  # the file stays; its OS lock ended with the process
    prompts = write_prompts(tmp_path, ["a red circle"])
    assert run_ok(capsys, "--prompts", prompts, "--output_dir", out, *STEPS) == [str(out / "00001-seed0.png")]


def test_every_process_of_a_launched_run_refuses_a_locked_folder(tmp_path):
    """Under accelerate launch only the main process takes the lock: the others learn that it failed instead of
    waiting for it at a barrier."""
    from diffusers_glide.folder_lock import lock_folders

    prompts = write_prompts(tmp_path, ["a red circle", "a green square"])
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29548",
        "-m", "diffusers_glide.cli", "generate", "--prompts", str(prompts), "--output_dir", str(out), *STEPS,
    ]  # fmt: skip
    with lock_folders({"--output_dir": out}):  # another run
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode != 0
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [in_use(out)] * 2
    assert os.listdir(out) == [LOCK_FILE]


# ---------------------------------------------------------------------------------------------------------------
# User errors: `error: ...`, exit 2, before any model loads


def check_error(capsys, args, message: str, usage: bool = False) -> None:
    """`message` on the last line of stderr: after `error: `, or for argparse's usage errors after its prefix."""
    assert main(["generate", *map(str, args)]) == 2
    err = capsys.readouterr().err
    prefix = "diffusers-glide generate: " if usage else ""
    assert err.splitlines()[-1] == f"{prefix}error: {message}", err


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "holds no prompts (blank lines are skipped)."),
        (["", "  ", ""], "holds no prompts (blank lines are skipped)."),
        (
            ['{"prompt": "a red circle"}', '{"prompt": "a green square" "seed": 1}'],
            "line 2: invalid JSON (Expecting ',' delimiter, column 29).",
        ),  # fmt: skip
        (
            ['["a red circle"]'],
            'line 1: expected a JSON object such as {"prompt": "a red circle", "seed": 0}, got ["a red circle"]',
        ),  # fmt: skip
        (['{"seed": 1}'], 'line 1: missing "prompt".'),
        (['{"promt": "a red circle"}'], 'line 1: unknown key "promt" (the keys are "prompt", and "seed" or "seeds").'),
        (['{"prompt": 3}'], 'line 1: "prompt" must be a string, got 3.'),
        (['{"prompt": "a", "seed": 1, "seeds": [2]}'], 'line 1: give "seed" or "seeds", not both.'),
        (['{"prompt": "a", "seed": -1}'], "line 1: seeds are integers in [0, 2**64), got -1."),
        (['{"prompt": "a", "seed": 1.5}'], "line 1: seeds are integers, got 1.5."),
        (['{"prompt": "a", "seed": true}'], "line 1: seeds are integers, got true."),
        (['{"prompt": "a", "seed": "1"}'], 'line 1: seeds are integers, got "1".'),
        (['{"prompt": "a", "seeds": [0, 2, 2]}'], "line 1: seed 2 is given twice."),
        (['{"prompt": "a", "seeds": []}'], "line 1: give at least one seed."),
        (['{"prompt": "a", "seeds": 3}'], 'line 1: "seeds" must be a list of seeds such as [0, 1, 2], got 3.'),
        (
            ['{"prompt": "a", "seeds": ' + "[" * 100_000 + "]" * 100_000 + "}"],
            "line 1: JSON nested too deeply to read (a prompt line is one flat object).",
        ),  # was a RecursionError traceback
    ],
)
def test_bad_jsonl_lines(tmp_path, capsys, no_model, lines, message):
    path = write_prompts(tmp_path, lines, "prompts.jsonl") if lines else tmp_path / "prompts.jsonl"
    if not lines:
        path.write_text("")
    check_error(capsys, ["--prompts", path, "--output_dir", tmp_path / "out"], f"{path} {message}")
    assert not (tmp_path / "out").exists()


def test_bad_text_files(tmp_path, capsys, no_model):
    out = tmp_path / "out"
    missing = tmp_path / "missing.txt"
    check_error(capsys, ["--prompts", missing, "--output_dir", out], f"--prompts {missing}: file not found.")
    check_error(capsys, ["--prompts", tmp_path, "--output_dir", out], f"--prompts {tmp_path}: not a file.")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("a red circle\na blue caf\xe9\n".encode("latin-1"))
    message = f"{latin} line 2: not UTF-8 text (invalid continuation byte)."
    check_error(capsys, ["--prompts", latin, "--output_dir", out], message)
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    prompts = write_prompts(tmp_path, ["a red circle"])
    message = f"Cannot write the output '{a_file}/00001-seed0.png': {a_file} is a file, not a folder."
    check_error(capsys, ["--prompts", prompts, "--output_dir", a_file], message)


PROMPT_FILE = ["--prompts", "prompts.txt", "--output_dir", "out"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a PROMPT, or --prompts FILE with one prompt a line."),
        (["a red circle", *PROMPT_FILE], "give a PROMPT or --prompts FILE, not both (got the prompt 'a red circle')."),
        (
            ["--prompts", "prompts.txt"],
            "--prompts writes one image per prompt and seed: give the folder with --output_dir.",
        ),
        (["a red circle", "--output_dir", "out"], "--output_dir goes with --prompts FILE."),
        (["a red circle", "--batch_size", "2"], "--batch_size goes with --prompts FILE."),
        (
            [*PROMPT_FILE, "--low_output_dir", "low"],
            "--low_output_dir holds the images before upsampling: it needs --upsampler.",
        ),
        (
            [*PROMPT_FILE, "--upsampler", "default", "--low_output_dir", "out"],
            "--low_output_dir must differ from --output_dir (the images share their names).",
        ),
        ([*PROMPT_FILE, "--seeds", "0,1", "--seed", "3"], "give --seeds, or --seed with --num_images, not both."),
        (
            [*PROMPT_FILE, "--seed", str(2**64 - 1), "--num_images", "2"],
            f"--seed {2**64 - 1} with --num_images 2: the last seed, {2**64}, is not below 2**64 (seeds are integers "
            "in [0, 2**64)).",
        ),
        (
            [*PROMPT_FILE, "-o", "glide.png"],
            "-o/--output names one image: with --prompts the images go to --output_dir.",
        ),
    ],
)
def test_bad_arguments(tmp_path, monkeypatch, capsys, no_model, args, message):
    monkeypatch.chdir(tmp_path)
    write_prompts(tmp_path, ["a red circle"])
    check_error(capsys, args, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        ("0,-1", "seeds are integers in [0, 2**64), got -1"),
        ("0,x", "expected comma-separated integers such as 0,1,2, got '0,x'"),
        ("1,1", "seed 1 is given twice"),
    ],
)
def test_bad_seeds_flag(tmp_path, capsys, no_model, seeds, message):
    check_error(capsys, [*PROMPT_FILE, "--seeds", seeds], f"argument --seeds: {message}", usage=True)


@pytest.mark.parametrize("seed", [2**70, 2**64, -1])
def test_seed_out_of_range(tmp_path, capsys, no_model, seed):
    # 2**70 was a traceback (OverflowError from torch's manual_seed); now a usage error, as for the single image
    message = f"argument --seed: seeds are integers in [0, 2**64), got {seed}"
    check_error(capsys, [*PROMPT_FILE, "--seed", seed], message, usage=True)


def test_a_folder_of_another_prompt_file_is_refused(tmp_path, capsys, no_model):
    out = tmp_path / "out"
    out.mkdir()
    listed = {"file_name": "00001-seed0.png", "prompt": "a red circle", "seed": 0}
    (out / "metadata.jsonl").write_text(json.dumps(listed) + "\n")
    changed = write_prompts(tmp_path, ["a green square"])
    now = {"file_name": "00001-seed0.png", "prompt": "a green square", "seed": 0}
    message = (
        f"{out}/metadata.jsonl lists 00001-seed0.png as {json.dumps(listed)}, but the prompt file and seeds now make "
        f"it as {json.dumps(now)}: give a new --output_dir."
    )
    check_error(capsys, ["--prompts", changed, "--output_dir", out], message)

    same = write_prompts(tmp_path, ["a red circle"], "same.txt")
    message = (
        f"{out}/metadata.jsonl lists 00001-seed0.png, which the prompt file and seeds no longer make: resume with the "
        "same prompts and seeds (more lines or seeds may be added), or give a new --output_dir."
    )
    check_error(capsys, ["--prompts", same, "--output_dir", out, "--seed", "1"], message)

    (out / "metadata.jsonl").write_text("not json\n")
    message = (
        f"cannot read {out}/metadata.jsonl (Expecting value: line 1 column 1 (char 0)): delete it or give a new "
        "--output_dir."
    )
    check_error(capsys, ["--prompts", same, "--output_dir", out], message)

    (out / "metadata.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")  # was a RecursionError traceback
    message = f"cannot read {out}/metadata.jsonl (nested too deeply): delete it or give a new --output_dir."
    check_error(capsys, ["--prompts", same, "--output_dir", out], message)
