import json

import numpy as np
import PIL.Image
import pytest
import torch
from image_file_makers import eps_writing, exif_rotated_jpeg, fake_ghostscript, png_declaring, upright_picture

from diffusers_glide.training.data import (
    HFImageCaptionDataset,
    ImageCaptionFolder,
    collate_image_captions,
    image_to_tensor,
)


def _image(width, height, color=(255, 0, 0)):
    return PIL.Image.new("RGB", (width, height), color)


def test_image_to_tensor_crops_the_centre_and_scales_to_minus_one_one():
    image = PIL.Image.new("RGB", (20, 10), (0, 0, 0))
    image.paste((255, 255, 255), (5, 0, 15, 10))  # white centre square, black sides
    tensor = image_to_tensor(image, 10)
    assert tensor.shape == (3, 10, 10) and tensor.dtype == torch.float32
    torch.testing.assert_close(tensor, torch.ones(3, 10, 10))  # only the centre survives the crop
    squashed = image_to_tensor(image, 10, center_crop=False)
    assert squashed.min() == -1 and squashed.max() == 1


def test_folder_with_metadata_jsonl(tmp_path):
    _image(16, 16).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    _image(20, 16, (0, 0, 255)).save(tmp_path / "sub" / "b.jpg")
    lines = [{"file_name": "a.png", "text": "a red square"}, {"file_name": "sub/b.jpg", "caption": "blue"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    dataset = ImageCaptionFolder(tmp_path, 8)
    assert len(dataset) == 2
    batch = collate_image_captions([dataset[0], dataset[1]])
    assert batch["captions"] == ["a red square", "blue"]
    assert batch["pixel_values"].shape == (2, 3, 8, 8)
    torch.testing.assert_close(batch["pixel_values"][0, 0], torch.ones(8, 8))  # red channel of red


def test_folder_with_txt_captions(tmp_path):
    _image(8, 8).save(tmp_path / "x.png")
    (tmp_path / "x.txt").write_text("  a caption \n")
    assert ImageCaptionFolder(tmp_path, 8)[0]["caption"] == "a caption"


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageCaptionFolder(tmp_path / "missing", 8)
    with pytest.raises(ValueError, match="No captioned images"):
        ImageCaptionFolder(tmp_path, 8)
    _image(8, 8).save(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match=r"have no caption: add a .txt file with the same name \(e.g. x.txt\)"):
        ImageCaptionFolder(tmp_path, 8)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "y.png", "text": "t"}\n')
    with pytest.raises(FileNotFoundError, match="names 1 image"):
        ImageCaptionFolder(tmp_path, 8)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "x.png"}\n')
    with pytest.raises(ValueError, match="line 1: no string 'text'"):
        ImageCaptionFolder(tmp_path, 8)
    (tmp_path / "metadata.jsonl").write_text("not json\n")
    with pytest.raises(ValueError, match="line 1: not valid JSON"):
        ImageCaptionFolder(tmp_path, 8)


def test_corrupt_image_is_reported(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    (tmp_path / "bad.txt").write_text("caption")
    with pytest.raises(ValueError) as excinfo:
        ImageCaptionFolder(tmp_path, 8)[0]
    path = str(tmp_path / "bad.png")
    assert str(excinfo.value) == f"Training image {path!r} is not a PNG, JPEG, WebP, BMP, GIF or TIFF image."


def test_folder_images_go_through_the_image_gate(tmp_path, monkeypatch):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    eps_writing(data / "a.png", tmp_path / "written-by-postscript")
    png_declaring(data / "b.png", 30000, 30000)
    exif_rotated_jpeg(data / "c.jpg", upright_picture(48, 48), orientation=6)
    for name in ("a", "b", "c"):
        (data / f"{name}.txt").write_text("caption")
    dataset = ImageCaptionFolder(data, 48, center_crop=False)
    with pytest.raises(ValueError, match=r"a.png' is not a PNG, JPEG, WebP, BMP, GIF or TIFF image \(it is EPS\)\.$"):
        dataset[0]
    with pytest.raises(ValueError, match=r"b.png' is 900000000 pixels: too large \(at most 8192x8192 pixels\)\.$"):
        dataset[1]
    upright = image_to_tensor(PIL.Image.fromarray(upright_picture(48, 48)), 48, center_crop=False)
    assert (dataset[2]["pixel_values"] - upright).abs().max() < 0.1  # as the photo is shown, not as stored
    assert not ran.exists()


def test_hugging_face_image_columns_are_decoded_through_the_image_gate(tmp_path, monkeypatch):
    import datasets

    ran = fake_ghostscript(monkeypatch, tmp_path)
    eps = eps_writing(tmp_path / "x.eps", tmp_path / "written-by-postscript").read_bytes()
    photo = exif_rotated_jpeg(tmp_path / "photo.jpg", upright_picture(48, 48), orientation=8).read_bytes()
    images = [{"bytes": photo, "path": None}, {"bytes": eps, "path": "x.png"}]
    dataset = datasets.Dataset.from_dict({"image": images, "text": ["a", "b"]}).cast_column("image", datasets.Image())
    wrapped = HFImageCaptionDataset(dataset, 48, center_crop=False)
    assert wrapped.dataset.features["image"].decode is False  # `datasets` would decode with any Pillow format
    upright = image_to_tensor(PIL.Image.fromarray(upright_picture(48, 48)), 48, center_crop=False)
    assert (wrapped[0]["pixel_values"] - upright).abs().max() < 0.1
    with pytest.raises(ValueError) as excinfo:
        wrapped[1]
    assert str(excinfo.value) == (
        "Image 1 (x.png) of column 'image' is not a PNG, JPEG, WebP, BMP, GIF or TIFF image (it is EPS)."
    )
    assert not ran.exists()


def test_hugging_face_dataset():
    import datasets  # in the `test` extra

    dataset = datasets.Dataset.from_dict(
        {"image": [_image(12, 12), _image(12, 12, (0, 255, 0))], "text": ["red", "green"]}
    ).cast_column("image", datasets.Image())
    wrapped = HFImageCaptionDataset(dataset, 4)
    assert [wrapped[0]["caption"], wrapped[1]["caption"]] == ["red", "green"]
    assert wrapped[1]["pixel_values"].shape == (3, 4, 4)
    np.testing.assert_allclose(wrapped[1]["pixel_values"][1].numpy(), 1.0)
    listed = datasets.Dataset.from_dict({"image": [_image(4, 4)], "captions": [["first", "second"]]})
    assert HFImageCaptionDataset(listed, 4, caption_column="captions")[0]["caption"] == "first"
    with pytest.raises(
        ValueError,
        match=r"`caption_column`='caption' is not a column of the dataset; its columns are \['image', 'text'\]",
    ):
        HFImageCaptionDataset(dataset, 4, caption_column="caption")
