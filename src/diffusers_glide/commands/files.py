"""The sampling commands' files: the names of their outputs, the checks before anything loads, reading the input
images and writing the results. The pipelines own every input rule; the commands read files, load models and
translate errors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import OVERWRITE_INPUT, CLIError

if TYPE_CHECKING:
    import PIL.Image


def output_path(path: Path, index: int, count: int, tag: str = "") -> Path:
    """`path` for one image, else `<stem>-<index><suffix>`; `tag` (e.g. "-low") goes before the suffix."""
    number = f"-{index}" if count > 1 else ""
    return path.with_name(f"{path.stem}{number}{tag}{path.suffix}")


def output_paths(path: Path, count: int, tag: str = "") -> list[Path]:
    return [output_path(path, i, count, tag) for i in range(count)]


def check_outputs(path: Path, count: int, tags: tuple[str, ...] = ("",)) -> None:
    """Fail before sampling when the outputs cannot be written. They share a folder and a suffix: the first and
    the last name of each kind stand for all (a huge --num_images builds no list of paths)."""
    from ..output_folders import check_output_image_paths

    check_output_image_paths(output_path(path, i, count, tag) for tag in tags for i in {0, count - 1})


def numbered_outputs(path: Path, count: int) -> list[Path]:
    """The outputs `output_paths(path, count)` that may exist: the folder is listed rather than each name tried (a
    huge --num_images builds no list of names). Names are matched regardless of case, for file systems that ignore
    it; the paths returned are the ones the command writes."""
    if count == 1:
        return [path]
    pattern = re.compile(re.escape(path.stem) + "-(0|[1-9][0-9]*)" + re.escape(path.suffix), re.IGNORECASE)
    try:
        names = os.listdir(path.parent)
    except OSError:  # no folder yet: no output exists
        return []
    indices = {int(match[1]) for match in map(pattern.fullmatch, names) if match}
    return [output_path(path, index, count) for index in sorted(indices) if index < count]


def check_inputs_kept(args, outputs: list[Path], inputs: dict[str, Path | None]) -> None:
    """Refuse, before anything loads, a run whose outputs would replace one of its inputs, unless --overwrite_input."""
    from ..output_folders import check_inputs_kept as check

    if not args.overwrite_input:
        check(outputs, inputs, allow=OVERWRITE_INPUT)


def save(images: Iterable[PIL.Image.Image], paths: list[Path]) -> None:
    """Write each image to its path (atomically) and print the path."""
    from ..output_folders import save_image_atomically

    for image, path in zip(images, paths, strict=True):
        save_image_atomically(image, path)
        print(path)


def read_image(path: Path, what: str) -> PIL.Image.Image:
    """The image file through the package's image gate (`image_files.read_image`: PNG, JPEG, WebP, BMP, GIF or
    TIFF by its bytes, its pixel count checked before decoding, upright as its EXIF orientation says), in any mode
    and bit depth: the pipelines convert it."""
    from ..image_files import ImageFileError
    from ..image_files import read_image as read_image_file

    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    if not path.is_file():
        raise CLIError(f"{what} {path} is not a file.")
    try:
        return read_image_file(path, f"{what} {path}")
    except ImageFileError as error:
        raise CLIError(str(error)) from None
