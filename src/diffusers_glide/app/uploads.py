"""What the web app reads from the browser: uploaded image files and the image editor's painted layers.

Uploads arrive undecoded: paths of files that Gradio stored (it only hands over files uploaded to it), or the
bytes of the editor's layers. Each is read through `diffusers_glide.image_files.read_image`: its format sniffed
from its bytes (PNG, JPEG, WebP, BMP, GIF, TIFF; never a format that needs another program), its pixel count checked
*before* decoding (a small file that decodes to a huge image is refused with a message instead of filling the
memory), its EXIF orientation applied.
"""

from __future__ import annotations

import os

import numpy as np
import PIL.Image

from ..image_files import ImageFileError, pixels_text, read_image

# 4096 x 4096: far above any GLIDE size, far below the memory of a server
MAX_UPLOAD_PIXELS = 4096 * 4096
# the editor's page sends one painted layer (its layer tool is off); a few more are allowed, each read in turn
MAX_EDITOR_LAYERS = 4


class UploadError(ValueError):
    """An upload the app cannot use, with a message for the page."""


def read_upload(value, what: str = "image", max_pixels: int = MAX_UPLOAD_PIXELS) -> PIL.Image.Image:
    """An uploaded image (a file path, the file's bytes, or a PIL image when called from Python) as a loaded PIL
    image."""
    if value is None:
        raise UploadError(f"Upload an {what} first.")
    if isinstance(value, PIL.Image.Image):
        width, height = value.size
        if width * height > max_pixels:
            raise UploadError(f"The {what} is {width}x{height}: too large (at most {pixels_text(max_pixels)}).")
        return value
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise UploadError(f"The {what} must be an uploaded file, got {type(value).__name__}.")
    try:
        return read_image(value, f"The {what}", max_pixels)
    except ImageFileError as error:
        raise UploadError(str(error)) from None


def to_rgb(image: PIL.Image.Image) -> PIL.Image.Image:
    """RGB, with any transparency composited over black (as the pipelines read images)."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        black = PIL.Image.new("RGBA", image.size, (0, 0, 0, 255))
        return PIL.Image.alpha_composite(black, image.convert("RGBA")).convert("RGB")
    return image.convert("RGB")


def resize_square(image: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """`image` at `size` x `size`, resized as the pipelines resize (PIL's bicubic filter), RGB."""
    image = to_rgb(image)
    return image if image.size == (size, size) else image.resize((size, size), PIL.Image.BICUBIC)


class EditorInput:
    """
    The image editor's value read for inpainting: the uploaded image (the background), where the user painted
    (the union of the painted layers), and the painted picture (the composite: the sketch).
    """

    def __init__(self, value, max_pixels: int = MAX_UPLOAD_PIXELS):
        if not isinstance(value, dict) or value.get("background") is None:
            raise UploadError(
                "Upload an image to edit first, or send one from the Generate tab (a file that the browser cannot "
                "show as an image is not loaded)."
            )
        layers = value.get("layers") or []
        if not isinstance(layers, list):
            raise UploadError(f"The painted layers must be a list of files, got {type(layers).__name__}.")
        if len(layers) > MAX_EDITOR_LAYERS:  # each is read in turn: a bound on the request's work
            raise UploadError(
                f"The image editor sent {len(layers)} painted layers: at most {MAX_EDITOR_LAYERS} are accepted."
            )
        self.background = to_rgb(read_upload(value["background"], "image", max_pixels))
        painted = np.zeros((self.background.height, self.background.width), dtype=bool)
        for number, layer in enumerate(layers, start=1):
            layer = read_upload(layer, f"painted layer {number}", max_pixels)
            if layer.size != self.background.size:
                layer = layer.resize(self.background.size, PIL.Image.NEAREST)
            alpha = np.asarray(layer.convert("RGBA"))[..., 3]
            painted |= alpha > 0
        if not painted.any():
            raise UploadError(
                "Paint over the region to repaint with the brush first: no brush stroke was found on the image."
            )
        self.painted = painted
        composite = value.get("composite")
        self.composite = None if composite is None else to_rgb(read_upload(composite, "painted image", max_pixels))

    def repaint_mask(self, size: int) -> np.ndarray:
        """The region to repaint at `size` x `size`: every pixel of that size that a stroke touches (a thin
        stroke on a large image still marks the pixels it crosses)."""
        painted = PIL.Image.fromarray(self.painted.astype(np.uint8) * 255)
        if painted.size != (size, size):
            painted = painted.resize((size, size), PIL.Image.BOX)
        return np.asarray(painted) > 0

    def model_inputs(self, size: int, sketch: bool) -> tuple[PIL.Image.Image, PIL.Image.Image]:
        """The image and the mask (white = repaint) at `size` x `size`. With `sketch`, the painted colours stand
        inside the mask (the start of sketch-guided inpainting); outside it the image is the uploaded one."""
        repaint = self.repaint_mask(size)
        image = resize_square(self.background, size)
        if sketch and self.composite is not None:
            painted = np.asarray(resize_square(self.composite, size))
            pixels = np.where(repaint[..., None], painted, np.asarray(image))
            image = PIL.Image.fromarray(pixels.astype(np.uint8))
        return image, mask_image(repaint)


def mask_image(repaint: np.ndarray) -> PIL.Image.Image:
    """A boolean repaint mask as a black-and-white image (white = repaint)."""
    return PIL.Image.fromarray(repaint.astype(np.uint8) * 255)


def upscale_mask(mask: PIL.Image.Image, size: int) -> PIL.Image.Image:
    """A mask at `size` x `size` that repaints exactly the pixels inside the cells of the smaller mask."""
    return mask if mask.size == (size, size) else mask.resize((size, size), PIL.Image.NEAREST)
