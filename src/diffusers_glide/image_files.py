"""Reading image files: the one gate every image the package reads goes through (the command line, the web app's
uploads and image editor, training data).

`read_image` opens a file (or its bytes) and returns it as a loaded PIL image, or raises `ImageFileError` (a
`ValueError`) with a one-line message that names the file:

- Formats: PNG, JPEG, WebP, BMP, GIF and TIFF, recognised from the file's bytes, never from its name (an EPS
  file named `x.png` is refused). Pillow decodes these itself, in this process. Everything else that Pillow can
  open is refused: EPS and PostScript above all, which Pillow renders by running Ghostscript (`gs`), an
  interpreter of the file's PostScript program (a file can write files, or loop forever); PDF (Pillow only writes
  it) and SVG (not a raster format) are not read by Pillow at all; and the rarely used formats (PSD, ICO, JPEG
  2000, AVIF, PPM, TGA, ...) are left out to keep the decoders that untrusted bytes reach few. Reading an image
  never starts another program.
- Size: the pixel count is checked from the header, after `open` and before any pixel is decoded, so a small
  file declaring a huge image costs nothing. Pillow's own decompression-bomb check at `open` gives the same
  message.
- Orientation: the EXIF orientation is applied (`ImageOps.exif_transpose`): the pixels are the picture as an
  image viewer shows it, so a mask painted over what the user sees covers the same pixels here.
- Several frames (animated GIF or WebP, multi-page TIFF): the first frame.

The returned image keeps the file's mode (RGB, RGBA, L, P, I;16, ...); the pipelines convert it.
This module imports only Pillow: the command line, the app and the trainer all use it.
"""

from __future__ import annotations

import io
import re
import struct
import warnings

import PIL.Image
import PIL.ImageOps

from .messages import one_line

# Pillow's names of the formats read; each is decoded by Pillow itself (no external program)
FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
_DISPLAY_NAMES = {"WEBP": "WebP"}
# 8192 x 8192: a 48-megapixel photo passes; 256 MB as RGBA, a size any machine that samples GLIDE decodes
MAX_PIXELS = 8192 * 8192
# what Pillow's decoders raise on a broken file
_DECODING_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class ImageFileError(ValueError):
    """An image file that is refused or cannot be read, with a one-line message that names it."""


def formats_text(formats: tuple[str, ...] = FORMATS) -> str:
    """`a PNG, JPEG, WebP, BMP, GIF or TIFF image` for `FORMATS`."""
    names = [_DISPLAY_NAMES.get(name, name) for name in formats]
    return "a " + (f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]) + " image"


def pixels_text(max_pixels: int) -> str:
    """`4096x4096 pixels` for a square count, else `N pixels`."""
    side = int(max_pixels**0.5)
    return f"{side}x{side} pixels" if side * side == max_pixels else f"{max_pixels} pixels"


def read_image(
    source, what: str = "image", max_pixels: int = MAX_PIXELS, formats: tuple[str, ...] = FORMATS
) -> PIL.Image.Image:
    """
    The image in `source` (a path, or the file's bytes) as a loaded PIL image, upright, its first frame.

    `what` starts every error message: name the file there (`"image in.png"`, `"The uploaded image"`).
    Raises `ImageFileError` for a file that cannot be opened, a format outside `formats` (some of `FORMATS`), more
    than `max_pixels` pixels, an empty image or undecodable pixels.
    """
    if not set(formats) <= set(FORMATS):
        raise ValueError(f"`formats` must be some of {FORMATS}, got {formats}.")
    try:
        file = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else open(source, "rb")  # noqa: SIM115
    except OSError as error:
        raise ImageFileError(f"{what} cannot be read: {error.strerror or error}.") from None
    with file:
        image = _open(file, what, max_pixels, formats)
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageFileError(f"{what} is {width}x{height}: too large (at most {pixels_text(max_pixels)}).")
            if width == 0 or height == 0:
                raise ImageFileError(f"{what} is empty ({width}x{height}).")
            try:
                image.load()  # the first frame
                return PIL.ImageOps.exif_transpose(image)  # a copy, with the file's orientation applied
            except _DECODING_ERRORS as error:
                raise ImageFileError(f"{what} cannot be decoded: {one_line(error)}") from error


def _open(file, what: str, max_pixels: int, formats: tuple[str, ...]) -> PIL.Image.Image:
    """`PIL.Image.open` restricted to `formats` (sniffed from the bytes); reads only the header."""
    try:
        # Pillow warns above its MAX_IMAGE_PIXELS: `read_image` refuses such an image right after, naming its size.
        # (`catch_warnings` is not thread-safe: at worst this warning stays ignored, and the gate still refuses.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            return PIL.Image.open(file, formats=formats)
    except PIL.Image.DecompressionBombError as error:  # twice Pillow's limit: refused by `open`, which gives no size
        found = re.search(r"\((\d+) pixels\)", str(error))
        count = f"{found.group(1)} pixels" if found else "more pixels than Pillow opens"
        raise ImageFileError(f"{what} is {count}: too large (at most {pixels_text(max_pixels)}).") from None
    except PIL.UnidentifiedImageError:
        file.seek(0)
        other = _pillow_format(file.read(16))
        found = f" (it is {other})" if other else ""
        raise ImageFileError(f"{what} is not {formats_text(formats)}{found}.") from None
    except _DECODING_ERRORS as error:
        raise ImageFileError(f"{what} cannot be read as an image: {one_line(error)}") from error


def _pillow_format(prefix: bytes) -> str | None:
    """The format Pillow's plugins recognise in a file's first bytes (what `open` would read it as), for the
    message; only compares bytes."""
    PIL.Image.init()
    for name, (_, accept) in PIL.Image.OPEN.items():
        try:
            if accept is not None and accept(prefix):
                return name
        except Exception:  # noqa: BLE001 - a plugin's check of too few bytes: no name to give
            continue
    return None
