"""One run at a time per output folder.

`generate --prompts FILE --output_dir DIR` holds a lock on each of its output folders from before it reads their
`metadata.jsonl` until it ends, so a second run on the same folder refuses at once instead of mixing its metadata and
images with the first's (two such runs once left a metadata.jsonl listing 30 of the folder's 60 images). It refuses
rather than waits: a run may take hours, and under `accelerate launch` the other processes would wait for it at a
collective call, which times out.

The lock is `filelock`'s: an OS lock (flock on Unix) on the file `.diffusers-glide.lock` in the folder. The OS
releases it when its process ends, however it ends, so a killed run never blocks the next one; the empty file stays.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path

LOCK_FILE = ".diffusers-glide.lock"


class FolderInUseError(ValueError):
    """Another run holds the lock of an output folder."""


@contextmanager
def lock_folders(folders: Mapping[str, Path]) -> Iterator[None]:
    """Hold the lock of every folder (flag -> folder; created when missing) for the `with` block; FolderInUseError,
    without waiting, when another run (or another lock object of this process) holds one of them."""
    from filelock import FileLock, Timeout

    with ExitStack() as stack:
        for flag, folder in folders.items():
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / LOCK_FILE
            try:
                stack.enter_context(FileLock(path, timeout=0))
            except Timeout:
                raise FolderInUseError(
                    f"{flag} {folder} is in use by another diffusers-glide run (it holds the lock {path}): wait for "
                    f"that run to end, or give another {flag}."
                ) from None
        yield
