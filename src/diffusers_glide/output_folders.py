"""Writing output folders and images so that no run ever loses data.

Every folder a command writes as a whole (a converted pipeline, the noised CLIP's components, the trainer's final
pipeline and its checkpoints) goes through [`OutputFolder`]:

- it is built in a staging folder next to its target and swapped in only when complete. On Linux the swap is one
  `renameat2(RENAME_EXCHANGE)`, so the target path always holds the old or the new folder. Elsewhere (or on a file
  system without it) the old folder is moved aside, the new one moved in, and the old one deleted; a run killed
  between those two renames leaves the target missing, and the next writer of that target moves the old one back;
- staging and aside folders are named `.<target>.staging-<pid>-<random>` / `.<target>.old-<pid>-<random>`; the next
  writer cleans up those of dead processes only, never those of a live concurrent writer;
- only an empty folder or a recognisable earlier output may be replaced (the latter with `overwrite=True`), and never
  the current folder, the home folder, `/`, their ancestors, or a folder that holds one of the run's inputs.

Images are written to a temporary file in the same folder, `.<name>.<pid>-<random>.tmp`, and renamed into place
([`save_image_atomically`]); the first write of a folder in a process removes the temporary files of dead processes
([`remove_stale_temporaries`]), never those of live ones.
Files and folders get the usual permissions (`0o666` / `0o777` less the umask), not `tempfile`'s private `0o700`.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import PIL.Image

from .variants import PIPELINE_CLASSES

CLIP_COMPONENT_FOLDERS = ("clip_image_encoder", "clip_text_encoder", "clip_tokenizer")
EARLIER_OUTPUTS = (
    f"a GLIDE pipeline folder (model_index.json of a {' / '.join(PIPELINE_CLASSES)}) or a noised-CLIP folder "
    f"({', '.join(name + '/' for name in CLIP_COMPONENT_FOLDERS)})"
)
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>staging|old)-(?P<pid>\d+)-[0-9a-f]+$")
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")  # see temporary_path
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_EXCHANGE_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def is_pipeline_folder(path: Path) -> bool:
    """Whether `path` holds a `model_index.json` of one of our pipeline classes."""
    try:
        model_index = json.loads((path / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(model_index, dict) and model_index.get("_class_name") in PIPELINE_CLASSES


def is_clip_folder(path: Path) -> bool:
    """Whether `path` holds the noised-CLIP component folders that the CLIP converter writes."""
    return all((path / name).is_dir() for name in CLIP_COMPONENT_FOLDERS)


def is_earlier_output(path: Path) -> bool:
    return is_pipeline_folder(path) or is_clip_folder(path)


def _reached(point: str) -> None:
    """Called at each step of a replacement ("staged", "swapped", "moved_aside", "moved_in"); a test hook."""


@dataclass(frozen=True)
class OutputFolder:
    """
    A folder that a run writes as a whole, with the rules for replacing what is there.

    Args:
        path: The target folder (resolved; a symlink is followed).
        overwrite: Allow replacing a non-empty folder that `recognise` accepts.
        inputs: The run's input files and folders: a target that is one of them or holds one is refused.
        recognise: Tells an earlier output that may be replaced; `recognised_as` describes it in errors.
    """

    path: Path
    overwrite: bool = False
    inputs: Iterable = ()
    recognise: Callable[[Path], bool] = field(default=is_earlier_output, compare=False)
    recognised_as: str = EARLIER_OUTPUTS

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path).expanduser().resolve())
        object.__setattr__(self, "inputs", tuple(str(item) for item in self.inputs if item is not None))

    def check(self) -> None:
        """Raise (ValueError / FileExistsError naming the folder and why) unless the target may be written."""
        target = self.path
        reason = _protected_reason(target, self.inputs)
        if reason:
            raise ValueError(f"Refusing to write the output folder {target}: {reason}. Give a new folder.")
        if target.exists() and not target.is_dir():
            raise FileExistsError(f"The output folder {target} exists and is not a folder.")
        if not target.is_dir() or not any(target.iterdir()):
            return
        if not self.overwrite:
            raise FileExistsError(
                f"The output folder {target} already exists and is not empty; pass overwrite=True (--overwrite) to "
                "replace it."
            )
        if not self.recognise(target):
            raise FileExistsError(
                f"Refusing to replace {target}: it is not empty and not {self.recognised_as}. Give a new or empty "
                "folder."
            )

    def begin(self) -> Path:
        """Clean up after killed writers, check the target, and create an empty staging folder next to it."""
        recover(self.path)
        self.check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        staging = _sibling(self.path, "staging")
        staging.mkdir()  # 0o777 less the umask, unlike tempfile.mkdtemp's 0o700
        return staging

    def commit(self, staging: Path) -> Path:
        """Swap the complete `staging` folder in for the target (checked again) and delete the old one."""
        _give_usual_permissions(staging)
        _reached("staged")
        self.check()
        target = self.path
        if not target.exists():
            os.rename(staging, target)
            return target
        if _exchange(staging, target):
            _reached("swapped")
            shutil.rmtree(staging, ignore_errors=True)  # now the old folder; a leftover is cleaned up next time
            return target
        aside = _sibling(target, "old")
        os.rename(target, aside)
        _reached("moved_aside")
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(aside, target)
            raise
        _reached("moved_in")
        shutil.rmtree(aside, ignore_errors=True)
        return target

    def write(self, fill: Callable[[Path], None]) -> Path:
        """`fill(staging)` writes the content into an empty folder, which then replaces the target."""
        staging = self.begin()
        try:
            fill(staging)
            return self.commit(staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a failed write (or nothing, after a plain rename)


def recover(target: str | os.PathLike) -> None:
    """Undo or finish what writers of `target` that were killed left next to it (live writers' folders stay)."""
    target = Path(target)
    _recover(target.parent, only=target.name)


def recover_all(parent: str | os.PathLike) -> None:
    """[`recover`] for every target in the folder `parent`."""
    _recover(Path(parent))


def _recover(parent: Path, only: str | None = None) -> None:
    if not parent.is_dir():
        return
    dead: dict[str, list[tuple[str, Path]]] = {}
    for path in parent.iterdir():
        match = _LEFTOVER.match(path.name)
        if not match or (only is not None and match["name"] != only):
            continue
        if not _pid_alive(int(match["pid"])):
            dead.setdefault(match["name"], []).append((match["kind"], path))
    for name, leftovers in dead.items():
        target = parent / name
        asides = sorted((path for kind, path in leftovers if kind == "old"), key=_mtime, reverse=True)
        if asides and not os.path.lexists(target):
            # killed between moving the old folder aside and moving the new one in: the old one goes back
            try:
                os.rename(asides[0], target)
            except FileNotFoundError:  # another writer restored it first
                pass
        for _, path in leftovers:
            shutil.rmtree(path, ignore_errors=True)


def _give_usual_permissions(folder: Path) -> None:
    """Folders 0o777 and files 0o666, less the umask: some writers (safetensors) create their files 0o600."""
    umask = os.umask(0)
    os.umask(umask)
    for root, _, files in os.walk(folder):
        os.chmod(root, 0o777 & ~umask)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o666 & ~umask)


def _sibling(target: Path, kind: str) -> Path:
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another thread of this process may be writing
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a killed child that nobody has waited for yet is a zombie: dead, though kill(0) succeeds
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _protected_reason(target: Path, inputs: tuple[str, ...]) -> str | None:
    """Why `target` must never be replaced, if it must not."""
    if target == Path(target.anchor):
        return "it is the root folder"
    for name, get in (("current folder", Path.cwd), ("home folder", Path.home)):
        try:
            place = get().resolve()
        except (OSError, RuntimeError):  # a deleted current folder, no home
            continue
        if target == place:
            return f"it is the {name}"
        if target in place.parents:
            return f"it contains the {name} ({place})"
    for item in inputs:
        path = Path(item).expanduser().resolve()
        if target == path:
            return f"it is the input {item}"
        if target in path.parents:
            return f"it holds the input {item}"
    return None


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a libc without it (glibc < 2.28, musl < 1.2.2)
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); False where that is not supported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in _EXCHANGE_UNSUPPORTED:
        return False
    raise OSError(error, os.strerror(error), str(a), None, str(b))


# ---------------------------------------------------------------------------------------------------------------
# Images


def image_format(path: str | os.PathLike) -> str:
    """The Pillow format that writes `path`, from its suffix (ValueError for an unknown or read-only one)."""
    PIL.Image.init()
    suffix = Path(path).suffix.lower()
    name = PIL.Image.registered_extensions().get(suffix)
    if name is None or name not in PIL.Image.SAVE:
        raise ValueError(
            f"Cannot tell the image format of the output {str(path)!r} from its suffix {suffix!r}: use e.g. .png or "
            ".jpg."
        )
    return name


def check_output_image_paths(paths: Iterable[str | os.PathLike]) -> None:
    """Fail before any sampling when an output image could not be written: unknown suffix, a folder, or a parent
    that is a file or not writable (tried with a real temporary file, since access checks do not hold for root)."""
    writable: set[Path] = set()
    for path in map(Path, paths):
        if path.is_dir():
            raise ValueError(f"The output {str(path)!r} is a folder: give a file name such as {path / 'glide.png'}.")
        image_format(path)
        folder = path.absolute().parent
        while not os.path.lexists(folder) and folder != folder.parent:
            folder = folder.parent  # the part that exists; the rest is created when saving
        if folder in writable:
            continue
        if not folder.is_dir():
            raise ValueError(f"Cannot write the output {str(path)!r}: {folder} is a file, not a folder.")
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise ValueError(
                f"Cannot write the output {str(path)!r}: cannot create files in {folder} ({error.strerror or error})."
            ) from error
        writable.add(folder)


def temporary_path(path: Path) -> Path:
    """Where a file is written before it is renamed to `path`: `.<name>.<pid>-<8 hex digits>.tmp` next to it (the
    pid tells [`remove_stale_temporaries`] whether its writer still runs)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files (`.<name>.<pid>-<random>.tmp`) that writers killed mid-write left in `folder`;
    those of live processes stay. Returns how many were deleted.

    Process ids are this machine's: where processes of other machines write the same folder, only one process of
    the run that excludes all others (the batch mode's main process, under its lock) may call this."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    removed = 0
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False) or _pid_alive(int(match["pid"])):
            continue
        try:
            os.unlink(entry.path)
        except FileNotFoundError:  # another writer of the folder removed it first
            continue
        removed += 1
    return removed


_cleaned_folders: set[Path] = set()


def _remove_stale_temporaries_once(folder: Path) -> None:
    """[`remove_stale_temporaries`] on the first write of `folder` by this process: a folder may hold 100k images,
    and listing it again for each would cost more than the images."""
    key = folder.resolve()
    if key not in _cleaned_folders:
        _cleaned_folders.add(key)
        remove_stale_temporaries(key)


def check_inputs_kept(outputs: Iterable[Path], inputs: Mapping[str, Path | None], allow: str) -> None:
    """ValueError when writing one of `outputs` would replace one of `inputs` (flag -> path; None: not given): the
    same path, or the same file through a symlink or a hard link (`os.path.samestat`). Only outputs that exist are
    compared: one that does not exist cannot be an input that does, and an input that does not exist fails when it
    is read. `allow` names the flag that permits it."""
    identities = {}
    for flag, path in inputs.items():
        try:
            identities[flag, path] = os.stat(path)
        except (OSError, TypeError, ValueError):  # missing or not given
            continue
    if not identities:
        return
    for output in outputs:
        try:
            found = os.stat(output)  # follows a symlink to what it points to
        except (OSError, ValueError):
            continue
        for (flag, path), identity in identities.items():
            if os.path.samestat(found, identity):
                raise ValueError(
                    f"The output {str(output)!r} is the input {flag} {str(path)!r} (the same file): give another "
                    f"output, or pass {allow} to write over the input."
                )


def save_image_atomically(image: PIL.Image.Image, path: str | os.PathLike, clean_folder: bool = True) -> Path:
    """Save `image` to `path` (format from the suffix) through a temporary file in the same folder, so that `path`
    never holds a partial image; parent folders are created. With `clean_folder`, the first save into a folder in
    this process also removes the temporary files of dead writers ([`remove_stale_temporaries`])."""
    path = Path(path)
    format_name = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if clean_folder:
        _remove_stale_temporaries_once(path.parent)
    temporary = temporary_path(path)
    try:
        with open(temporary, "xb") as f:  # 0o666 less the umask
            image.save(f, format=format_name)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path
