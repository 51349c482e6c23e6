"""Hostile and tricky image files for the tests of the image gate (`diffusers_glide.image_files`) at every entry
point (the gate itself, the command line, the web app, training data), and a fake Ghostscript that shows whether
anything ran it."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
from PIL import EpsImagePlugin

EXIF_ORIENTATION = 0x0112


def _png(path: Path, width: int, height: int, colour_type: int, data: bytes) -> Path:
    def chunk(kind: bytes, content: bytes) -> bytes:
        return struct.pack(">I", len(content)) + kind + content + struct.pack(">I", zlib.crc32(kind + content))

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG of ~100 bytes whose header declares `width` x `height` RGBA pixels (its data is a few empty rows):
    what a decompression bomb looks like before decoding."""
    return _png(path, width, height, 6, zlib.compress(b"\0" * 1000))


def png_bomb(path: Path, side: int = 13000) -> Path:
    """A complete, valid PNG of `side` x `side` black grey-scale pixels: 164 KB that decode to 169 MB at 13000 (the
    fuzzing pass's editor layer). Made in ~1 s."""
    compressor = zlib.compressobj()
    rows = b"\0" * ((side + 1) * 1000)  # each row: its filter byte and `side` pixels
    data = b"".join(
        compressor.compress(rows[: (side + 1) * min(1000, side - start)]) for start in range(0, side, 1000)
    )
    return _png(path, side, side, 0, data + compressor.flush())


def eps_writing(path: Path, marker: Path) -> Path:
    """An EPS file whose PostScript writes `marker` when an interpreter (Ghostscript) runs it."""
    path.write_text(
        "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
        f"({marker}) (w) file dup (written by PostScript) writestring closefile\nshowpage\n%%EOF\n"
    )
    return path


def eps_looping(path: Path) -> Path:
    """A 55-byte EPS file whose PostScript loops forever: Ghostscript runs it at 100% CPU with no end."""
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 1 1\n{} loop\n")
    return path


def fake_ghostscript(monkeypatch, folder: Path) -> Path:
    """A `gs` executable first on PATH that writes a marker file each time it runs (Pillow looks `gs` up on PATH,
    `gs --version` first, and runs it to render EPS); Pillow's cached lookup is reset. Returns the marker's path,
    which exists once anything started `gs`."""
    bin_dir = folder / "fake-bin"
    bin_dir.mkdir()
    marker = folder / "gs-ran"
    gs = bin_dir / "gs"
    gs.write_text(f'#!/bin/sh\necho "$@" >> "{marker}"\n')
    gs.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)
    return marker


def upright_picture(width: int = 48, height: int = 32) -> np.ndarray:
    """A non-square picture whose every rotation and flip differs: blue, a red block in the top-left corner and a
    green one on the right edge, in 8x8 cells (JPEG keeps flat cells nearly exact)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[...] = (30, 60, 200)
    pixels[0:16, 0:8] = (220, 30, 30)
    pixels[height - 16 : height - 8, width - 8 : width] = (30, 200, 60)
    return pixels


# EXIF orientation -> the transpose that stores an upright picture so that a viewer applying the orientation
# shows it upright (6: the viewer turns the stored pixels 90 degrees clockwise; 8: counter-clockwise)
_STORED = {6: PIL.Image.Transpose.ROTATE_90, 8: PIL.Image.Transpose.ROTATE_270}


def exif_rotated_jpeg(path: Path, upright: np.ndarray, orientation: int = 6) -> Path:
    """`upright` saved as a camera saves a turned photo: the pixels stored sideways, an EXIF orientation saying how
    to turn them back."""
    stored = PIL.Image.fromarray(upright).transpose(_STORED[orientation])
    exif = PIL.Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    stored.save(path, "JPEG", quality=100, subsampling=0, exif=exif)
    return path


def record_decoding(monkeypatch) -> list:
    """Every image Pillow decodes from now on (its size), still decoded: the list a test checks the bomb is not in."""
    import PIL.ImageFile

    decoded = []
    load = PIL.ImageFile.ImageFile.load

    def recording_load(image):
        decoded.append(image.size)
        return load(image)

    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", recording_load)
    return decoded
