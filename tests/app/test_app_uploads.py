"""The app's uploads and image editor layers go through the image gate (`diffusers_glide.image_files`), checked at
its callbacks without a browser: EPS (whatever its name) is refused without running Ghostscript, a decompression
bomb is refused from its header, an EXIF-rotated photo is used as the visitor sees it, and the editor's images may
be the bytes the page sends."""

import time

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from image_file_makers import (
    eps_looping,
    eps_writing,
    exif_rotated_jpeg,
    fake_ghostscript,
    png_bomb,
    png_declaring,
    record_decoding,
    upright_picture,
)

from diffusers_glide import GlideUpsamplePipeline, embedded_model_path
from diffusers_glide.app import GlideAppCallbacks, load_app_models
from diffusers_glide.app.models import ANCESTRAL, DPM_SOLVER

PROMPT = "a red circle on a blue background"
NOT_AN_IMAGE = "is not a PNG, JPEG, WebP, BMP, GIF or TIFF image"


@pytest.fixture(scope="module")
def app():
    return GlideAppCallbacks(load_app_models())


def _message(call) -> str:
    with pytest.raises(gr.Error) as excinfo:
        call()
    return excinfo.value.message


def _background(path, size=32) -> str:
    PIL.Image.new("RGB", (size, size), (30, 60, 200)).save(path)
    return str(path)


def _layer(path, size=32) -> str:
    pixels = np.zeros((size, size, 4), dtype=np.uint8)
    pixels[16:28, 16:28] = (255, 255, 255, 128)
    PIL.Image.fromarray(pixels).save(path)
    return str(path)


def _edit(app, value):
    return app.edit(value, "a green square", 1.0, 5.0, 3, ANCESTRAL, 4, False)


@pytest.mark.parametrize("name", ["picture.png", "picture.eps"])
def test_eps_uploads_and_layers_are_refused_without_running_ghostscript(app, tmp_path, monkeypatch, name):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    written = tmp_path / "written-by-postscript"
    eps = str(eps_writing(tmp_path / name, written))
    refused = f"{NOT_AN_IMAGE} (it is EPS)."
    assert _message(lambda: app.upscale(eps, PROMPT, 2, DPM_SOLVER, 0, False)) == f"The image {refused}"
    assert _message(lambda: app.img2img(eps, PROMPT, "", 0.5, 3.0, 4, ANCESTRAL, 0, False, 1)) == (
        f"The image {refused}"
    )
    background, layer = _background(tmp_path / "bg.png"), _layer(tmp_path / "layer.png")
    for value, what in [
        ({"background": eps, "layers": [layer], "composite": None}, "The image"),
        ({"background": background, "layers": [layer, eps], "composite": None}, "The painted layer 2"),
        ({"background": background, "layers": [layer], "composite": eps}, "The painted image"),
    ]:
        assert _message(lambda value=value: _edit(app, value)) == f"{what} {refused}"
    assert _message(lambda: app.use_result(eps, None, [])) == f"The image {refused}"
    assert not ran.exists() and not written.exists()


def test_an_endless_postscript_loop_is_refused_at_once(app, tmp_path, monkeypatch):
    ran = fake_ghostscript(monkeypatch, tmp_path)
    loop = str(eps_looping(tmp_path / "loop.png"))
    started = time.perf_counter()
    assert _message(lambda: app.upscale(loop, PROMPT, 2, DPM_SOLVER, 0, False)) == (
        f"The image {NOT_AN_IMAGE} (it is EPS)."
    )
    assert time.perf_counter() - started < 2
    assert not ran.exists()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("layer.zip", b"PK\x03\x04" + b"\0" * 100),
        ("layer.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="9"/></svg>'),
    ],
)
def test_editor_layers_that_are_not_images_are_refused(app, tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    value = {"background": _background(tmp_path / "bg.png"), "layers": [str(tmp_path / name)], "composite": None}
    assert _message(lambda: _edit(app, value)) == f"The painted layer 1 {NOT_AN_IMAGE}."


def test_the_editor_bomb_is_refused_from_headers_without_decoding(app, tmp_path, monkeypatch):
    decoded = record_decoding(monkeypatch)
    bomb = str(png_bomb(tmp_path / "bomb.png"))
    background = _background(tmp_path / "bg.png")
    started = time.perf_counter()
    value = {"background": background, "layers": [bomb] * 20, "composite": bomb}
    assert _message(lambda: _edit(app, value)) == "The image editor sent 20 painted layers: at most 4 are accepted."
    value = {"background": background, "layers": [_layer(tmp_path / "layer.png"), bomb], "composite": None}
    assert _message(lambda: _edit(app, value)) == (
        "The painted layer 2 is 13000x13000: too large (at most 4096x4096 pixels)."
    )
    value = {"background": bomb, "layers": [], "composite": None}
    assert _message(lambda: _edit(app, value)) == "The image is 13000x13000: too large (at most 4096x4096 pixels)."
    assert time.perf_counter() - started < 3
    assert (13000, 13000) not in decoded
    assert _message(lambda: app.use_result(bomb, None, [])) == (
        "The image is 13000x13000: too large (at most 4096x4096 pixels)."
    )
    huge = str(png_declaring(tmp_path / "huge.png", 30000, 30000))  # over Pillow's own limit
    assert _message(lambda: app.upscale(huge, PROMPT, 2, DPM_SOLVER, 0, False)) == (
        "The image is 900000000 pixels: too large (at most 4096x4096 pixels)."
    )


def test_the_editor_reads_the_bytes_the_page_sends_as_it_reads_files(app, tmp_path):
    background, layer = _background(tmp_path / "bg.png"), _layer(tmp_path / "layer.png")
    from_files = _edit(app, {"background": background, "layers": [layer], "composite": background})
    as_bytes = {
        "background": (tmp_path / "bg.png").read_bytes(),
        "layers": [(tmp_path / "layer.png").read_bytes()],
        "composite": (tmp_path / "bg.png").read_bytes(),
    }
    from_bytes = _edit(app, as_bytes)
    assert np.array_equal(np.asarray(from_files[0]), np.asarray(from_bytes[0]))
    assert np.array_equal(np.asarray(from_files[1]), np.asarray(from_bytes[1]))
    assert np.asarray(from_bytes[1]).any()  # the painted square is the mask
    assert _message(lambda: _edit(app, {"background": b"%!PS-Adobe-3.0 EPSF-3.0\n", "layers": []})) == (
        f"The image {NOT_AN_IMAGE} (it is EPS)."
    )


def test_upscale_uses_the_photo_as_the_visitor_sees_it(app, tmp_path):
    photo = exif_rotated_jpeg(tmp_path / "photo.jpg", upright_picture(48, 32), orientation=6)
    result, info = app.upscale(str(photo), PROMPT, 3, DPM_SOLVER, 5, False)
    assert info.endswith(" · stretched from 48x32 to 32x32 (crop it square to keep its shape)")
    pipe = GlideUpsamplePipeline.from_pretrained(embedded_model_path("upsample"))
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)  # the app's DPM_SOLVER
    with PIL.Image.open(photo) as stored:
        assert stored.size == (32, 48)  # stored sideways
        upright, sideways = PIL.ImageOps.exif_transpose(stored), stored.copy()
    expected = [  # the app stretches the upload to the base model's 32x32 (PIL's bicubic filter)
        pipe(
            PROMPT,
            image=low.convert("RGB").resize((32, 32), PIL.Image.BICUBIC),
            num_inference_steps=3,
            generator=torch.Generator().manual_seed(5),
        ).images[0]
        for low in (upright, sideways)
    ]
    assert not np.array_equal(np.asarray(expected[0]), np.asarray(expected[1]))  # the orientation matters
    assert np.array_equal(np.asarray(result), np.asarray(expected[0]))
