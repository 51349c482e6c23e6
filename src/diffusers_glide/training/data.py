"""Training data: image-caption folders, Hugging Face `datasets`, and the procedural shapes dataset.

Every dataset yields `{"pixel_values": float32 (3, R, R) in [-1, 1], "caption": str}`. Image files, and the image
bytes of a `datasets` image column, are decoded through the package's image gate (`image_files.read_image`: PNG,
JPEG, WebP, BMP, GIF or TIFF by their bytes, the pixel count checked before decoding, upright as their EXIF
orientation says); a refused file stops training with a one-line `ValueError` that names it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from ..image_files import read_image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")  # the formats read
METADATA_FILE = "metadata.jsonl"
CAPTION_KEYS = ("text", "caption")


def image_to_tensor(image: PIL.Image.Image, resolution: int, center_crop: bool = True) -> torch.Tensor:
    """Resize the short side to `resolution` (bicubic, antialiased), crop the centre square, scale to [-1, 1].

    With `center_crop=False` the whole image is resized to a square instead (the aspect ratio changes).
    """
    image = image.convert("RGB")
    if center_crop:
        scale = resolution / min(image.size)
        size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
        image = image.resize(size, PIL.Image.BICUBIC, reducing_gap=None)
        left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
    else:
        image = image.resize((resolution, resolution), PIL.Image.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _read_metadata(path: Path) -> dict[str, str]:
    captions = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line_number}: not valid JSON ({e}).") from e
            if not isinstance(record, dict) or "file_name" not in record:
                raise ValueError(f"{path}, line {line_number}: each line needs a 'file_name' and a 'text'.")
            key = next((k for k in CAPTION_KEYS if k in record), None)
            if key is None or not isinstance(record[key], str):
                raise ValueError(f"{path}, line {line_number}: no string 'text' (or 'caption') for the image.")
            captions[os.path.normpath(record["file_name"])] = record[key]
    return captions


class ImageCaptionFolder(torch.utils.data.Dataset):
    """
    A folder of images with captions, read either from `metadata.jsonl` (one `{"file_name": ..., "text": ...}`
    per line, the layout of diffusers' text-to-image examples and of `datasets`' imagefolder) or from a `.txt`
    file next to each image with the same stem.

    Args:
        root (`str`): The folder (searched recursively for images).
        resolution (`int`): Output height and width.
        center_crop (`bool`, *optional*, defaults to `True`): Resize the short side and crop the centre;
            otherwise squash the whole image to a square.
    """

    def __init__(self, root: str | os.PathLike, resolution: int, center_crop: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"Training data folder {str(self.root)!r} does not exist or is not a directory.")
        self.resolution = resolution
        self.center_crop = center_crop
        metadata_path = self.root / METADATA_FILE
        images = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if metadata_path.is_file():
            captions = _read_metadata(metadata_path)
            missing_files = [name for name in captions if not (self.root / name).is_file()]
            if missing_files:
                raise FileNotFoundError(
                    f"{metadata_path} names {len(missing_files)} image(s) that do not exist, e.g. {missing_files[:3]}."
                )
            self.items = [(self.root / name, caption) for name, caption in sorted(captions.items())]
        else:
            self.items = []
            missing = []
            for path in images:
                caption_path = path.with_suffix(".txt")
                if caption_path.is_file():
                    self.items.append((path, caption_path.read_text(encoding="utf-8").strip()))
                else:
                    missing.append(path.name)
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image(s) in {str(self.root)!r} have no caption: add a .txt file with the same "
                    f"name (e.g. {Path(missing[0]).stem}.txt) or a {METADATA_FILE}. First ones: {missing[:3]}."
                )
        if not self.items:
            raise ValueError(
                f"No captioned images found in {str(self.root)!r} (extensions {', '.join(IMAGE_EXTENSIONS)}; captions "
                f"in {METADATA_FILE} or one .txt per image)."
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        path, caption = self.items[index]
        image = read_image(path, f"Training image {str(path)!r}")
        return {"pixel_values": image_to_tensor(image, self.resolution, self.center_crop), "caption": caption}


class HFImageCaptionDataset(torch.utils.data.Dataset):
    """
    Wrap a Hugging Face `datasets.Dataset` with an image column and a caption column.

    Args:
        dataset: The `datasets.Dataset` (e.g. `load_dataset(name, split="train")`).
        resolution (`int`): Output height and width.
        image_column (`str`, *optional*, defaults to `"image"`), caption_column (`str`, *optional*, defaults
            to `"text"`): Column names. A caption column holding lists uses their first entry.
        center_crop (`bool`, *optional*, defaults to `True`): As in [`ImageCaptionFolder`].
    """

    def __init__(self, dataset, resolution: int, image_column="image", caption_column="text", center_crop=True):
        columns = list(getattr(dataset, "column_names", []) or [])
        for name, column in (("image_column", image_column), ("caption_column", caption_column)):
            if column not in columns:
                raise ValueError(f"`{name}`={column!r} is not a column of the dataset; its columns are {columns}.")
        self.dataset = _image_bytes(dataset, image_column)
        self.resolution = resolution
        self.image_column = image_column
        self.caption_column = caption_column
        self.center_crop = center_crop

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        record = self.dataset[index]
        image, caption = record[self.image_column], record[self.caption_column]
        if isinstance(caption, (list, tuple)):
            caption = caption[0] if caption else ""
        if not isinstance(caption, str):
            raise ValueError(f"Caption {index} in column {self.caption_column!r} is not a string: {caption!r}.")
        if isinstance(image, dict) and (image.get("bytes") is not None or image.get("path") is not None):
            source = image["bytes"] if image.get("bytes") is not None else image["path"]
            where = f" ({image['path']})" if image.get("path") else ""
            image = read_image(source, f"Image {index}{where} of column {self.image_column!r}")
        elif not isinstance(image, PIL.Image.Image):
            image = PIL.Image.fromarray(np.asarray(image))
        return {"pixel_values": image_to_tensor(image, self.resolution, self.center_crop), "caption": caption}


def _image_bytes(dataset, column: str):
    """`dataset` with a `datasets.Image` column left undecoded (`Image(decode=False)`: each row's file bytes or
    path), so that it is decoded through the image gate: `datasets` decodes with `PIL.Image.open`, which reads any
    format Pillow knows (EPS by running Ghostscript) at any size."""
    try:
        import datasets
    except ImportError:  # then `dataset` is not a `datasets.Dataset`
        return dataset
    feature = (getattr(dataset, "features", None) or {}).get(column)
    if isinstance(feature, datasets.Image) and feature.decode:
        return dataset.cast_column(column, datasets.Image(decode=False))
    return dataset


def load_hf_dataset(name: str, split: str = "train", config_name: str | None = None, cache_dir=None):
    """`datasets.load_dataset(name, config_name, split=split)`, with a clear error when `datasets` is missing."""
    try:
        import datasets
    except ImportError as e:
        raise ImportError(
            "Training on a Hugging Face dataset needs the `datasets` package: pip install datasets"
        ) from e
    return datasets.load_dataset(name, config_name, split=split, cache_dir=cache_dir)


def collate_image_captions(examples: list[dict]) -> dict:
    """Stack images; keep captions as a list (tokenized in the training step, after caption dropout)."""
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "captions": [example["caption"] for example in examples],
    }
