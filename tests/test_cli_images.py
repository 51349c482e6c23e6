"""The command line reads every image file through the image gate (`diffusers_glide.image_files`): an EPS file
(whatever its name) or a decompression bomb is a one-line `error:` with exit code 2 and never starts Ghostscript,
and an EXIF-rotated photo is used upright, as the user sees it (the mask too)."""

import time

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from image_file_makers import (
    eps_looping,
    eps_writing,
    exif_rotated_jpeg,
    fake_ghostscript,
    png_declaring,
    upright_picture,
)

from diffusers_glide import GlideImg2ImgPipeline, GlideScheduler, embedded_model_path
from diffusers_glide.cli import main

PROMPT = "a red circle on a blue background"
NOT_AN_IMAGE = "is not a PNG, JPEG, WebP, BMP, GIF or TIFF image (it is EPS)."


def _one_error_line(capsys, argv) -> str:
    """Runs `diffusers-glide argv`, which must fail with exit code 2 and one `error:` line (no traceback)."""
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def _scene(path, size=32):
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    PIL.Image.fromarray(pixels).save(path)
    return path


def _mask(path, size=32):
    mask = np.zeros((size, size), np.uint8)
    mask[8:24, 8:24] = 255
    PIL.Image.fromarray(mask).save(path)
    return path


@pytest.mark.parametrize("name", ["hostile.eps", "hostile.png"])
def test_eps_files_are_refused_without_running_ghostscript(tmp_path, monkeypatch, capsys, name):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    written = tmp_path / "written-by-postscript"
    eps = eps_writing(tmp_path / name, written)
    image, mask, out = _scene(tmp_path / "in.png"), _mask(tmp_path / "mask.png"), tmp_path / "out.png"
    common = ["--steps", 2, "--no_progress", "-o", out]
    for argv, what in [
        (["img2img", PROMPT, "--image", eps, *common], "image"),
        (["inpaint", PROMPT, "--image", eps, "--mask", mask, *common], "image"),
        (["inpaint", PROMPT, "--image", image, "--mask", eps, *common], "mask"),
    ]:
        assert _one_error_line(capsys, argv) == f"error: {what} {eps} {NOT_AN_IMAGE}"
    assert not ran.exists() and not written.exists() and not out.exists()


def test_an_endless_postscript_loop_returns_at_once(tmp_path, monkeypatch, capsys):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    eps = eps_looping(tmp_path / "loop.png")
    started = time.perf_counter()
    error = _one_error_line(capsys, ["img2img", PROMPT, "--image", eps, "-o", tmp_path / "out.png"])
    assert error == f"error: image {eps} {NOT_AN_IMAGE}"
    assert time.perf_counter() - started < 10  # the loop would never end
    assert not ran.exists()


def test_a_png_declaring_30000x30000_is_one_error_line(tmp_path, capsys):
    bomb = png_declaring(tmp_path / "bomb.png", 30000, 30000)
    image, mask, out = _scene(tmp_path / "in.png"), _mask(tmp_path / "mask.png"), tmp_path / "out.png"
    too_large = "is 900000000 pixels: too large (at most 8192x8192 pixels)."
    for argv, what in [
        (["inpaint", PROMPT, "--image", bomb, "--mask", mask, "-o", out], "image"),
        (["inpaint", PROMPT, "--image", image, "--mask", bomb, "-o", out], "mask"),
        (["img2img", PROMPT, "--image", bomb, "-o", out], "image"),
        (["edit", "--image", bomb, "--edit", mask, PROMPT, "-o", out], "image"),
        (["edit", "--image", image, "--edit", bomb, PROMPT, "-o", out], "mask of edit 1"),
        (["upsample", PROMPT, "--image", bomb, "-o", out], "image"),
    ]:
        assert _one_error_line(capsys, argv) == f"error: {what} {bomb} {too_large}"
    assert not out.exists()


def test_training_on_a_folder_with_a_decompression_bomb_is_one_error_line(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    png_declaring(data / "bomb.png", 30000, 30000)
    (data / "bomb.txt").write_text("a red circle")
    argv = [
        "train", "--output_dir", tmp_path / "run", "--train_data_dir", data, "--train_batch_size", 1,
        "--max_train_steps", 1, "--sample_steps", 0, "--checkpointing_steps", 0, "--no_progress_bar",
        "--unet_config", '{"sample_size": 8, "block_out_channels": [16, 32], "attention_levels": [false, true], '
        '"norm_num_groups": 8, "attention_head_dim": 16}',
        "--text_encoder_config", '{"hidden_size": 32, "num_attention_heads": 2}',
    ]  # fmt: skip
    error = _one_error_line(capsys, argv)
    assert error == f"error: Training image {str(data / 'bomb.png')!r} is 900000000 pixels: too large (at most " + (
        "8192x8192 pixels)."
    )


def _pixels(path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _pipeline(pipeline_class, kind):
    pipe = pipeline_class.from_pretrained(embedded_model_path(kind))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_img2img_starts_from_the_photo_as_the_user_sees_it(tmp_path, capsys, one_thread):
    photo = exif_rotated_jpeg(tmp_path / "photo.jpg", upright_picture(), orientation=6)
    assert main(["img2img", PROMPT, "--image", str(photo), "--strength", "0.6", "--steps", "5", "--seed", "3",
                 "--sampler", "ddim", "--no_progress", "-o", str(tmp_path / "out.png")]) == 0  # fmt: skip
    pipe = _pipeline(GlideImg2ImgPipeline, "base")
    pipe.scheduler = GlideScheduler.from_config(pipe.scheduler.config, sampler="ddim")
    with PIL.Image.open(photo) as stored:
        upright, sideways = PIL.ImageOps.exif_transpose(stored), stored.copy()
    expected = [
        np.asarray(
            pipe(PROMPT, image=start, strength=0.6, num_inference_steps=5, generator=torch.Generator().manual_seed(3))
            .images[0]
            .convert("RGB")
        )
        for start in (upright, sideways)
    ]
    assert not np.array_equal(expected[0], expected[1])  # the orientation changes the result
    assert np.array_equal(_pixels(tmp_path / "out.png"), expected[0])


def test_inpaint_repaints_the_region_of_the_mask_as_the_user_sees_it(tmp_path, capsys):
    image = _scene(tmp_path / "in.png")
    shown = np.zeros((32, 32, 3), np.uint8)
    shown[0:16, 0:8] = 255  # the region to repaint, as an image viewer shows the mask: top left
    mask = exif_rotated_jpeg(tmp_path / "mask.jpg", shown, orientation=8)
    with PIL.Image.open(mask) as stored:
        assert np.asarray(stored.convert("L"))[0:16, 0:8].max() < 128  # the file stores it elsewhere
    assert main(["inpaint", PROMPT, "--image", str(image), "--mask", str(mask), "--steps", "2", "--seed", "0",
                 "--no_progress", "-o", str(tmp_path / "out.png")]) == 0  # fmt: skip
    result, source = _pixels(tmp_path / "out.png"), _pixels(image)
    repaint = shown[..., 0] > 0
    assert np.array_equal(result[~repaint], source[~repaint])  # every pixel outside the region kept
    assert not np.array_equal(result[repaint], source[repaint])
