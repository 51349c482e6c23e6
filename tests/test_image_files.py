"""The image gate (`diffusers_glide.image_files.read_image`): the formats it reads, sniffed from the bytes; the
pixel limit, checked before decoding; the EXIF orientation; the first frame; and no external program, ever."""

import io
import time

import numpy as np
import PIL.Image
import PIL.ImageFile
import pytest
from image_file_makers import (
    eps_looping,
    eps_writing,
    exif_rotated_jpeg,
    fake_ghostscript,
    png_declaring,
    upright_picture,
)

from diffusers_glide.image_files import MAX_PIXELS, ImageFileError, read_image

NOT_AN_IMAGE = "is not a PNG, JPEG, WebP, BMP, GIF or TIFF image"


def _refusal(source, what="image x", **kwargs) -> str:
    with pytest.raises(ImageFileError) as excinfo:
        read_image(source, what, **kwargs)
    message = str(excinfo.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name", ["picture.eps", "picture.png"])
def test_eps_is_refused_by_its_bytes_and_ghostscript_never_runs(tmp_path, monkeypatch, name):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    written = tmp_path / "written-by-postscript"
    eps = eps_writing(tmp_path / name, written)
    assert _refusal(eps, f"image {name}") == f"image {name} {NOT_AN_IMAGE} (it is EPS)."
    assert not ran.exists() and not written.exists()
    # what the gate prevents: Pillow alone opens the same file (named .png too) by running `gs`
    with pytest.raises(OSError), PIL.Image.open(eps) as image:
        assert image.format == "EPS"
        image.load()
    assert ran.exists()


def test_an_endless_postscript_loop_is_refused_at_once(tmp_path, monkeypatch):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    eps = eps_looping(tmp_path / "loop.png")
    assert eps.stat().st_size == 55
    started = time.perf_counter()
    assert _refusal(eps) == f"image x {NOT_AN_IMAGE} (it is EPS)."
    assert time.perf_counter() - started < 1.0
    assert not ran.exists()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"PK\x03\x04" + b"\0" * 40, ""),  # a zip
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>', ""),
        (b"%PDF-1.4\n", ""),
        (b"not an image", ""),
        (b"8BPS" + b"\0" * 40, " (it is PSD)"),  # Pillow reads Photoshop files; the gate does not
    ],
)
def test_other_files_are_refused_whatever_their_name(tmp_path, content, found):
    path = tmp_path / "x.png"
    path.write_bytes(content)
    assert _refusal(path) == f"image x {NOT_AN_IMAGE}{found}."


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF"])
def test_the_six_formats_are_read_whatever_their_name(tmp_path, fmt):
    pixels = np.zeros((8, 16, 3), dtype=np.uint8)
    pixels[:, 8:] = 255
    path = tmp_path / "picture.dat"
    PIL.Image.fromarray(pixels).save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    image = read_image(path)
    assert image.size == (16, 8)
    assert np.array_equal(np.asarray(image.convert("RGB"))[:, ::8, 0], [[0, 255]] * 8)  # the halves, also in JPEG
    assert read_image(path.read_bytes()).size == (16, 8)  # the bytes of the file read the same


def test_the_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path, monkeypatch):
    loads = []
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load", lambda self: loads.append(self))
    bomb = png_declaring(tmp_path / "bomb.png", 13000, 13000)
    assert bomb.stat().st_size < 200
    message = _refusal(bomb, "The image", max_pixels=4096 * 4096)
    assert message == "The image is 13000x13000: too large (at most 4096x4096 pixels)."
    assert _refusal(png_declaring(tmp_path / "wide.png", 8193, 8192)) == (
        "image x is 8193x8192: too large (at most 8192x8192 pixels)."
    )
    assert MAX_PIXELS == 8192 * 8192
    assert loads == []  # nothing decoded


def test_pillows_own_bomb_check_gives_the_same_message(tmp_path):
    # 30000x30000 is over twice Pillow's MAX_IMAGE_PIXELS: `Image.open` itself refuses it, before any size is known
    assert _refusal(png_declaring(tmp_path / "bomb.png", 30000, 30000)) == (
        "image x is 900000000 pixels: too large (at most 8192x8192 pixels)."
    )


def test_broken_missing_and_empty_files_get_one_line(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(tmp_path / "full.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "full.png").read_bytes()[:300])
    assert _refusal(tmp_path / "cut.png").startswith("image x cannot be decoded: ")
    assert _refusal(tmp_path / "missing.png") == "image x cannot be read: No such file or directory."
    assert _refusal(tmp_path) == "image x cannot be read: Is a directory."


@pytest.mark.parametrize("orientation", [6, 8])
def test_the_exif_orientation_is_applied(tmp_path, orientation):
    upright = upright_picture()
    path = exif_rotated_jpeg(tmp_path / "photo.jpg", upright, orientation)
    with PIL.Image.open(path) as stored:
        assert stored.size == (32, 48)  # the file holds the picture sideways
    image = read_image(path)
    assert image.size == (48, 32)
    difference = np.abs(np.asarray(image, dtype=np.int16) - upright)
    assert difference.max() <= 8, difference.max()  # JPEG at quality 100 on flat 8x8 cells


def test_the_first_frame_of_an_animation(tmp_path):
    frames = [PIL.Image.new("RGB", (8, 8), colour) for colour in ("red", "lime", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    frames[0].save(tmp_path / "a.webp", save_all=True, append_images=frames[1:], lossless=True)
    frames[0].save(tmp_path / "a.tiff", save_all=True, append_images=frames[1:])
    for name in ("a.gif", "a.webp", "a.tiff"):
        with PIL.Image.open(tmp_path / name) as image:
            assert image.n_frames == 3
        assert read_image(tmp_path / name).convert("RGB").getpixel((4, 4)) == (255, 0, 0), name


def test_the_mode_and_depth_are_kept(tmp_path):
    buffer = io.BytesIO()
    PIL.Image.new("I;16", (4, 4), 40000).save(buffer, "PNG")
    image = read_image(buffer.getvalue())
    assert image.mode in ("I;16", "I") and image.getpixel((0, 0)) == 40000


def test_a_caller_may_read_fewer_formats(tmp_path):
    path = tmp_path / "photo.png"
    PIL.Image.new("RGB", (4, 4)).save(path, "JPEG")
    with pytest.raises(ImageFileError) as refused:
        read_image(path, "image photo.png", formats=("PNG",))
    assert str(refused.value) == "image photo.png is not a PNG image (it is JPEG)."
    assert read_image(path, formats=("PNG", "JPEG")).size == (4, 4)
    with pytest.raises(ValueError, match=r"`formats` must be some of \('PNG', 'JPEG', 'WEBP', 'BMP', 'GIF', 'TIFF'\)"):
        read_image(path, formats=("EPS",))
