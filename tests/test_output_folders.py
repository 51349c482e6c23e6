"""Output folders and images are written so that no data is ever lost: what may be replaced, atomic swaps that
survive a SIGKILL at every step, cleanup after killed writers, permissions, and output image paths."""

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import PIL.Image
import pytest
import torch
from conftest import REPO_ROOT
from safetensors.torch import save_file

import diffusers_glide
from diffusers_glide import output_folders
from diffusers_glide.output_folders import (
    OutputFolder,
    check_output_image_paths,
    recover,
    save_image_atomically,
)

# Runs one replacement of `target` by a copy of `new_source` and SIGKILLs itself at `point`. It imports only
# output_folders and variants (a stub package skips the package's torch imports), so it starts in a blink.
KILL_SCRIPT = r"""
import os, shutil, signal, sys, types
src, target, new_source, point, mode = sys.argv[1:]
package = types.ModuleType("diffusers_glide")
package.__path__ = [src]
sys.modules["diffusers_glide"] = package
from diffusers_glide import output_folders

def kill():
    os.kill(os.getpid(), signal.SIGKILL)

output_folders._reached = lambda name: kill() if name == point else None
if mode == "fallback":
    output_folders._exchange = lambda a, b: False
if point == "deleting":  # killed half-way through deleting the old folder
    def delete_one_entry_then_die(path, *args, **kwargs):
        first = os.path.join(path, sorted(os.listdir(path))[0])
        if os.path.isdir(first):
            real_rmtree(first)
        else:
            os.remove(first)
        kill()
    real_rmtree, shutil.rmtree = shutil.rmtree, delete_one_entry_then_die
output_folders.OutputFolder(target, overwrite=True).write(
    lambda staging: shutil.copytree(new_source, staging, dirs_exist_ok=True)
)
raise SystemExit("not killed")
"""
OLD, NEW = "GlidePipeline", "GlideInpaintPipeline"  # the base and base-inpaint fixture conversions


def _loaded_pipeline_class(folder: Path) -> str | None:
    """The class of the pipeline in `folder`, loaded with its weights (None when the folder is missing)."""
    if not folder.exists():
        return None
    class_name = json.loads((folder / "model_index.json").read_text())["_class_name"]
    pipeline = getattr(diffusers_glide, class_name).from_pretrained(folder)
    assert pipeline.unet.conv_in.weight.isfinite().all()
    return type(pipeline).__name__


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize(
    "mode, point, before_recovery, after_recovery",
    [
        ("exchange", "staged", OLD, OLD),
        ("exchange", "swapped", NEW, NEW),
        ("exchange", "deleting", NEW, NEW),
        ("fallback", "staged", OLD, OLD),
        ("fallback", "moved_aside", None, OLD),  # the only moment without a target: the next writer restores it
        ("fallback", "moved_in", NEW, NEW),
        ("fallback", "deleting", NEW, NEW),
    ],
)
def test_a_killed_replacement_leaves_the_old_or_the_new_pipeline(
    tmp_path, converted_folders, mode, point, before_recovery, after_recovery
):
    target = tmp_path / "glide"
    shutil.copytree(converted_folders["base"], target)
    command = [sys.executable, "-c", KILL_SCRIPT, str(REPO_ROOT / "src" / "diffusers_glide"), str(target)]
    command += [str(converted_folders["base-inpaint"]), point, mode]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert _loaded_pipeline_class(target) == before_recovery
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".glide.")]  # the killed writer's folder

    recover(target)
    assert _loaded_pipeline_class(target) == after_recovery
    assert [p.name for p in tmp_path.iterdir()] == ["glide"]


def test_the_next_writer_restores_a_folder_moved_aside_before_it_fails(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "model_index.json").write_text(json.dumps({"_class_name": "GlidePipeline"}))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    os.rename(target, tmp_path / f".out.old-{int(dead.stdout)}-0123abcd")  # killed after moving it aside

    def broken(staging):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        OutputFolder(target, overwrite=True).write(broken)
    assert json.loads((target / "model_index.json").read_text()) == {"_class_name": "GlidePipeline"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_leftovers_of_live_writers_and_other_targets_are_kept(tmp_path):
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        names = [f".out.staging-{sleeper.pid}-0a1b2c3d", f".out.staging-{dead_pid}-0a1b2c3d"]
        names += [f".out.old-{dead_pid}-00000001", f".other.staging-{dead_pid}-0a1b2c3d"]
        for name in names:
            (tmp_path / name).mkdir()
        OutputFolder(tmp_path / "out").write(lambda staging: (staging / "a.txt").write_text("new"))
    finally:
        sleeper.kill()
        sleeper.wait()
    # the live writer's staging folder and another target's leftover stay; the dead writer's are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names[0], names[3], "out"])
    assert (tmp_path / "out" / "a.txt").read_text() == "new"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux only")
def test_the_atomic_exchange_works_on_this_file_system(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "new.txt").touch()
    (b / "old.txt").touch()
    assert output_folders._exchange(a, b)
    assert [p.name for p in b.iterdir()] == ["new.txt"] and [p.name for p in a.iterdir()] == ["old.txt"]


def test_output_folders_get_the_usual_permissions(tmp_path):
    def fill(staging):
        (staging / "unet").mkdir()
        (staging / "unet" / "config.json").write_text("{}")
        save_file({"probe": torch.zeros(1)}, staging / "unet" / "weights.safetensors")  # safetensors makes it 0o600

    previous = os.umask(0o022)
    try:
        folder = OutputFolder(tmp_path / "out").write(fill)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # not tempfile.mkdtemp's 0o700
    assert stat.S_IMODE((folder / "unet").stat().st_mode) == 0o755
    assert stat.S_IMODE((folder / "unet" / "config.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((folder / "unet" / "weights.safetensors").stat().st_mode) == 0o644


def test_converted_folders_get_the_usual_permissions(converted_folders, converted_clip_folder):
    # folders 0o777 and files (weights included) 0o666, less the umask
    modes = {"folder": 0o777 & ~_umask(), "file": 0o666 & ~_umask()}
    for folder in (converted_folders["base"], converted_clip_folder):
        assert stat.S_IMODE(folder.stat().st_mode) == modes["folder"]
        for path in folder.rglob("*"):
            assert stat.S_IMODE(path.stat().st_mode) == modes["folder" if path.is_dir() else "file"], path


def test_protected_places_are_refused_even_with_overwrite(tmp_path, monkeypatch):
    cwd = tmp_path / "work" / "project"
    home = tmp_path / "home" / "me"
    cwd.mkdir(parents=True)
    home.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    for path, reason in [
        (Path("."), "it is the current folder"),
        (Path(".."), f"it contains the current folder \\({re.escape(str(cwd))}\\)"),
        (Path("/"), "it is the root folder"),
        (Path("~"), "it is the home folder"),
        (tmp_path / "home", f"it contains the home folder \\({re.escape(str(home))}\\)"),
    ]:
        resolved = re.escape(str(path.expanduser().resolve()))
        with pytest.raises(ValueError, match=f"Refusing to write the output folder {resolved}: {reason}\\. "):
            OutputFolder(path, overwrite=True).check()


def test_folders_holding_the_inputs_are_refused(tmp_path):
    data = tmp_path / "data"
    (data / "vocab").mkdir(parents=True)
    (data / "base.pt").write_bytes(b"weights")
    with pytest.raises(ValueError, match=f"{re.escape(str(data))}: it holds the input .*base.pt"):
        OutputFolder(data, overwrite=True, inputs=[data / "base.pt"]).check()
    with pytest.raises(ValueError, match=r"it holds the input .*base.pt"):  # an ancestor of an input
        OutputFolder(tmp_path, overwrite=True, inputs=[None, data / "base.pt"]).check()
    with pytest.raises(ValueError, match=r"vocab: it is the input .*vocab"):  # even an empty one
        OutputFolder(data / "vocab", inputs=[data / "vocab"]).check()
    OutputFolder(data / "out", inputs=[data / "base.pt", data / "vocab"]).check()  # a new folder next to them


def test_what_may_be_replaced(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    OutputFolder(empty).check()  # an empty folder is always written
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(
        FileExistsError, match=f"The output folder {re.escape(str(a_file))} exists and is not a folder"
    ):
        OutputFolder(a_file, overwrite=True).check()

    earlier = {
        "pipeline": {"model_index.json": json.dumps({"_class_name": "GlideUpsamplePipeline"})},
        "clip": {
            "clip_image_encoder/config.json": "{}",
            "clip_text_encoder/config.json": "{}",
            "clip_tokenizer/v": "",
        },
    }
    foreign = {
        "notes": {"notes.txt": "mine"},
        "other pipeline": {"model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline"})},
        "broken index": {"model_index.json": "{not json"},
        "partial clip": {"clip_image_encoder/config.json": "{}", "clip_tokenizer/v": ""},
    }
    for name, files in {**earlier, **foreign}.items():
        folder = tmp_path / name
        for relative, text in files.items():
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            (folder / relative).write_text(text)
        with pytest.raises(FileExistsError, match="already exists and is not empty; pass overwrite=True"):
            OutputFolder(folder).check()
        if name in earlier:
            OutputFolder(folder, overwrite=True).check()
        else:
            with pytest.raises(
                FileExistsError, match=f"Refusing to replace .*{name}: it is not empty and not a GLIDE"
            ):
                OutputFolder(folder, overwrite=True).check()


def test_a_failed_write_keeps_the_old_folder_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "model_index.json").write_text(json.dumps({"_class_name": "GlidePipeline"}))

    def broken(staging):
        (staging / "half.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        OutputFolder(target, overwrite=True).write(broken)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in target.iterdir()] == ["model_index.json"]


# ---------------------------------------------------------------------------------------------------------------
# Output images


def test_output_image_paths_are_checked_before_sampling(tmp_path):
    check_output_image_paths([tmp_path / "a.png", tmp_path / "new" / "deeper" / "b.JPG", tmp_path / "c.bmp"])
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # checking creates nothing
    with pytest.raises(ValueError, match=r"image format of the output '.*a\.txt' from its suffix '\.txt'"):
        check_output_image_paths([tmp_path / "a.png", tmp_path / "a.txt"])
    with pytest.raises(ValueError, match=r"from its suffix ''"):
        check_output_image_paths([tmp_path / "noext"])
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ValueError, match=r"folder\.png' is a folder: give a file name such as"):
        check_output_image_paths([tmp_path / "folder.png"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"Cannot write the output .*x\.png': .*notes\.txt is a file, not a folder"):
        check_output_image_paths([tmp_path / "notes.txt" / "sub" / "x.png"])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_output_images_in_a_place_that_cannot_be_written_are_refused():
    # the tests run as root, for whom os.access says yes everywhere: the check really tries to create a file
    with pytest.raises(ValueError, match=r"Cannot write the output '/proc/glide\.png': cannot create files in /proc"):
        check_output_image_paths([Path("/proc/glide.png")])


def test_images_are_saved_atomically_with_the_format_of_their_suffix(tmp_path):
    red = PIL.Image.new("RGB", (8, 8), (255, 0, 0))
    previous = os.umask(0o022)
    try:
        png = save_image_atomically(red, tmp_path / "out" / "red.png")
        jpeg = save_image_atomically(red, tmp_path / "red.jpeg")
    finally:
        os.umask(previous)
    with PIL.Image.open(png) as image:
        assert image.format == "PNG" and image.getpixel((3, 3)) == (255, 0, 0)
    with PIL.Image.open(jpeg) as image:
        assert image.format == "JPEG"
    assert stat.S_IMODE(png.stat().st_mode) == 0o644

    # a failed save keeps the previous image and leaves no temporary file
    with pytest.raises(OSError, match="cannot write mode RGBA as JPEG"):
        save_image_atomically(PIL.Image.new("RGBA", (8, 8)), jpeg)
    with PIL.Image.open(jpeg) as image:
        assert image.size == (8, 8) and image.mode == "RGB"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "red.jpeg", "red.png"]
    with pytest.raises(ValueError, match="from its suffix '.gif2'"):
        save_image_atomically(red, tmp_path / "red.gif2")


def test_the_first_save_into_a_folder_removes_the_temporary_files_of_dead_writers(tmp_path):
    red = PIL.Image.new("RGB", (8, 8), (255, 0, 0))
    dead_pid = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    names = {
        "dead": f".a.png.{dead_pid}-0a1b2c3d.tmp",  # a save killed between writing and renaming
        "live": f".b.png.{sleeper.pid}-0a1b2c3d.tmp",  # a save in progress
        "not ours": f".notes.{dead_pid}-12.tmp",  # not the pattern of `temporary_path` (8 hex digits)
    }
    try:
        for name in names.values():
            (tmp_path / name).write_bytes(b"\x89PNG cut")
        save_image_atomically(red, tmp_path / "x.png")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["live"], names["not ours"], "x.png"])

        # once per folder and process, not per image: a folder may hold 100k images
        (tmp_path / names["dead"]).write_bytes(b"")
        save_image_atomically(red, tmp_path / "y.png")
        assert (tmp_path / names["dead"]).exists()
        # other folders are cleaned on their first save, unless the caller does it (the batch mode, under its lock)
        for folder, clean in (("kept", False), ("cleaned", True)):
            (tmp_path / folder).mkdir()
            (tmp_path / folder / names["dead"]).write_bytes(b"")
            save_image_atomically(red, tmp_path / folder / "z.png", clean_folder=clean)
            assert (tmp_path / folder / names["dead"]).exists() is not clean, folder
        assert (tmp_path / names["live"]).read_bytes() == b"\x89PNG cut"
    finally:
        sleeper.kill()
        sleeper.wait()
