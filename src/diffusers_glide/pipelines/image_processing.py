"""How the GLIDE pipelines read images and masks: the one reading path for every pipeline and the CLI.

The rules (also in docs/pipelines.md, "Input rules"):

- **PIL images** of every mode. 8-bit modes (`1`, `L`, `P`, `RGB`, `CMYK`, `YCbCr`, ...) are read as they look;
  16-bit grayscale (`I;16`, `I;16B`, `I;16L`, and `I` holding 0..65535, as Pillow opens 16-bit PNGs) is scaled from
  0..65535; an alpha channel (`LA`, `RGBA`, `PA`, a palette with transparency) is composited over black, so a
  transparent pixel reads as black (for masks: keep). 32-bit float images (`F`) are refused.
- **numpy arrays and torch tensors**: `uint8` in 0..255, `uint16` in 0..65535, `bool`, or floats in **[0, 1]**.
  Values outside [0, 1], NaN and infinity are errors (a tensor in [-1, 1] is converted with `(x + 1) / 2`); other
  integer dtypes are refused as ambiguous (is 1 white or nearly black?).
- Images become RGB (grayscale is repeated over the three channels); masks become one channel (RGB reduced with
  PIL's luma weights), resized with nearest-neighbour interpolation and binarised at 0.5 (1 = repaint).
"""

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F
from diffusers.image_processor import VaeImageProcessor

# ITU-R 601-2 luma weights, as PIL's `convert("L")`, for RGB masks given as arrays or tensors.
_LUMA = (0.299, 0.587, 0.114)
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")
_VALUE_RULE = "floats in [0, 1], uint8 in 0..255, uint16 in 0..65535 or bool"
_TORCH_UINT16 = getattr(torch, "uint16", None)  # torch >= 2.3


class GlideImageProcessor(VaeImageProcessor):
    """
    Reads the pipelines' image and mask inputs (see the module docstring for the rules) and post-processes their
    outputs (diffusers' [`~diffusers.image_processor.VaeImageProcessor`] without resizing: GLIDE works in pixels).
    """

    def __init__(self):
        super().__init__(vae_scale_factor=1, do_resize=False, do_normalize=True)

    # ----------------------------------------------------------------------------------------------------------
    # Public readers

    def read_images(self, value, name: str, size: int | None = None) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """
        Images -> float32 `(batch, 3, H, W)` in [-1, 1], and each image's original `(height, width)`.

        With `size`, every image is resized to `size x size` with bicubic interpolation (8-bit PIL images with PIL's
        filter on the 8-bit image, as OpenAI's notebooks prepare theirs; the others with torch's antialiased bicubic,
        the same kernel). Without it, all images must already have one size.
        """
        batches, sizes = [], []
        for item in self._items(value, name):
            if size is not None and isinstance(item, PIL.Image.Image) and item.size != (size, size):
                sizes.append((item.height, item.width))
                pixels = self._pil_to_unit(item, name, channels=3, resize_to=size)
            else:
                pixels = self._to_unit(item, name, channels=3)
                sizes.extend([tuple(pixels.shape[-2:])] * pixels.shape[0])
                if size is not None and tuple(pixels.shape[-2:]) != (size, size):
                    pixels = F.interpolate(pixels, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
            batches.append(pixels)
        self._check_same_size(batches, name)
        return self.normalize(torch.cat(batches)), sizes

    def read_masks(self, value, name: str, size: int) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """
        Masks (white / 1 = repaint) -> the binary repaint mask, float32 `(batch, 1, size, size)`, and each mask's
        original `(height, width)`. Resized with nearest-neighbour interpolation (torch's "nearest-exact" picks the
        pixels PIL's nearest filter picks), binarised at 0.5.
        """
        masks, sizes = [], []
        for item in self._items(value, name):
            mask = self._to_unit(item, name, channels=1)
            sizes.extend([tuple(mask.shape[-2:])] * mask.shape[0])
            if tuple(mask.shape[-2:]) != (size, size):
                mask = F.interpolate(mask, size=(size, size), mode="nearest-exact")
            masks.append((mask >= 0.5).float())
        return torch.cat(masks), sizes

    # ----------------------------------------------------------------------------------------------------------
    # One item -> float32 (n, channels, H, W) in [0, 1]

    @staticmethod
    def _items(value, name: str) -> list:
        if value is None:
            raise ValueError(f"`{name}` is required.")
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise ValueError(f"`{name}` is an empty list: give at least one image.")
        for item in items:
            if not isinstance(item, (PIL.Image.Image, np.ndarray, torch.Tensor)):
                raise TypeError(
                    f"`{name}` must be PIL images, numpy arrays or torch tensors (or a list of them), got "
                    f"{type(item).__name__}."
                )
        return items

    def _to_unit(self, item, name: str, channels: int) -> torch.Tensor:
        if isinstance(item, PIL.Image.Image):
            return self._pil_to_unit(item, name, channels)
        shape = tuple(item.shape)
        if any(side == 0 for side in shape):
            raise ValueError(f"`{name}` is empty: got an array of shape {shape}.")
        values = self._array_values(item, name)
        layout = _image_layout if channels == 3 else _mask_layout
        values = layout(values, isinstance(item, np.ndarray), name, shape)
        if channels == 1 and values.shape[1] == 3:
            values = (values * torch.tensor(_LUMA).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
        return values

    @staticmethod
    def _array_values(item, name: str) -> torch.Tensor:
        """A numpy array / tensor as float32 on the CPU in [0, 1], by the dtype rules."""
        tensor = torch.from_numpy(np.ascontiguousarray(item)) if isinstance(item, np.ndarray) else item.detach()
        dtype = tensor.dtype
        if dtype == torch.uint8:
            return tensor.to("cpu", torch.float32) / 255
        if _TORCH_UINT16 is not None and dtype == _TORCH_UINT16:
            return tensor.to("cpu", torch.int32).float() / 65535
        if dtype == torch.bool:
            return tensor.to("cpu", torch.float32)
        if isinstance(item, np.ndarray) and item.dtype == np.uint16:  # torch < 2.3 has no uint16
            return torch.from_numpy(item.astype(np.float32) / 65535)
        if not dtype.is_floating_point:
            raise TypeError(
                f"`{name}` has dtype {str(item.dtype)}, which is ambiguous: give {_VALUE_RULE} (e.g. "
                "`array.astype(np.uint8)` for 0..255 values)."
            )
        values = tensor.to("cpu", torch.float32)
        if not torch.isfinite(values).all():
            raise ValueError(f"`{name}` holds NaN or infinite values.")
        low, high = values.min().item(), values.max().item()
        if low < 0 or high > 1:
            raise ValueError(
                f"`{name}` values must be {_VALUE_RULE}; got floats in [{low:.4g}, {high:.4g}]. Convert a [-1, 1] "
                "tensor with `(x + 1) / 2`, clamp others with `.clamp(0, 1)`."
            )
        return values

    def _pil_to_unit(self, image: PIL.Image.Image, name: str, channels: int, resize_to: int | None = None):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"`{name}` is an empty image ({image.width}x{image.height}).")
        mode = image.mode
        if mode == "F":
            raise ValueError(
                f"`{name}` is a 32-bit float image (PIL mode 'F'), which has no fixed value range: convert it to "
                "8 or 16 bits, or pass a float array in [0, 1]."
            )
        if mode in _SIXTEEN_BIT_MODES:
            values = np.asarray(image)
            if mode == "I" and (values.min() < 0 or values.max() > 65535):
                raise ValueError(
                    f"`{name}` is a 32-bit integer image (PIL mode 'I') with values in [{values.min()}, "
                    f"{values.max()}]: only 16-bit values (0..65535) are supported."
                )
            gray = torch.from_numpy(values.astype(np.float32) / 65535)[None, None]
            pixels = gray.expand(1, channels, *gray.shape[-2:]).clone()
            if resize_to is not None:
                pixels = F.interpolate(pixels, size=(resize_to, resize_to), mode="bicubic", antialias=True)
            return pixels.clamp(0, 1)
        try:
            if mode in _ALPHA_MODES or "transparency" in image.info:
                black = PIL.Image.new("RGBA", image.size, (0, 0, 0, 255))
                image = PIL.Image.alpha_composite(black, image.convert("RGBA"))
            image = image.convert("L" if channels == 1 else "RGB")
        except (ValueError, OSError) as error:
            raise ValueError(f"`{name}`: cannot convert a PIL image of mode {mode!r} to RGB: {error}") from error
        if resize_to is not None:
            image = image.resize((resize_to, resize_to), PIL.Image.BICUBIC)
        values = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255)
        return values.reshape(image.height, image.width, channels).permute(2, 0, 1)[None]

    @staticmethod
    def _check_same_size(batches: list[torch.Tensor], name: str) -> None:
        sizes = sorted({tuple(batch.shape[-2:]) for batch in batches})
        if len(sizes) > 1:
            raise ValueError(f"The images of `{name}` must all have the same size, got (height, width) {sizes}.")


def _image_layout(values: torch.Tensor, is_numpy: bool, name: str, shape: tuple) -> torch.Tensor:
    """numpy `(H, W, 3)` / `(N, H, W, 3)`, torch `(3, H, W)` / `(N, 3, H, W)` -> `(N, 3, H, W)`."""
    if values.ndim == 3:
        values = values[None]
    channel_axis = 3 if is_numpy else 1
    if values.ndim != 4 or values.shape[channel_axis] != 3:
        raise ValueError(
            f"`{name}` must be one RGB image or a batch of them, got shape {shape}: numpy (H, W, 3) / (N, H, W, 3), "
            "torch (3, H, W) / (N, 3, H, W)."
        )
    return values.permute(0, 3, 1, 2) if is_numpy else values


def _mask_layout(values: torch.Tensor, is_numpy: bool, name: str, shape: tuple) -> torch.Tensor:
    """Masks -> `(N, C, H, W)`, C = 1 or 3. numpy is channels last: `(H, W)`, `(H, W, C)`, `(N, H, W, C)`, and
    diffusers' `(N, H, W)`; torch channels first: `(H, W)`, `(C, H, W)`, `(N, C, H, W)`, `(N, H, W)`."""
    if is_numpy:  # to channels first
        if values.ndim == 3 and values.shape[-1] not in (1, 3):
            values = values[..., None]  # (N, H, W)
        values = values.movedim(-1, -3) if values.ndim >= 3 else values
    if values.ndim == 2:
        values = values[None, None]
    elif values.ndim == 3:
        values = values[None] if values.shape[0] in (1, 3) else values[:, None]
    if values.ndim != 4 or values.shape[1] not in (1, 3):
        raise ValueError(
            f"`{name}` must be a single-channel or RGB mask, got an array of shape {shape} (numpy arrays are (H, W), "
            "(H, W, C), (N, H, W, C) or (N, H, W); tensors (H, W), (C, H, W), (N, C, H, W) or (N, H, W); C = 1 or 3)."
        )
    return values
