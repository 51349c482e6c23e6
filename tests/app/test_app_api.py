"""What the running app answers to values sent through its HTTP API (what any client, not only the page, can send):
every value of the wrong type or shape and every refused image gets the app's own message, not Gradio's generic
"The upstream Gradio app has raised an exception"; images are read through the image gate, undecoded before it
(no Ghostscript, no decoding of a bomb)."""

import io
import json
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import PIL.Image
import pytest
from image_file_makers import eps_writing, fake_ghostscript, png_bomb, png_declaring, record_decoding

from diffusers_glide.app import build_app
from diffusers_glide.app.models import ANCESTRAL, DDIM

# Under pytest-xdist the app server tests share one worker, so one app server (and one Chromium) is started.
pytestmark = pytest.mark.xdist_group("app_server")

PROMPT = "a red circle on a blue background"
NOT_AN_IMAGE = "is not a PNG, JPEG, WebP, BMP, GIF or TIFF image"


def _multipart(fields: dict, files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in fields.items()
    ]
    for field, name, data in files:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n\r\n'
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _post(url: str, body: bytes, content_type: str):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _upload(url: str, name: str, data: bytes) -> dict:
    """The file uploaded as a client uploads it, as the FileData that the API takes."""
    body, content_type = _multipart({}, [("files", name, data)])
    (path,) = _post(url + "/gradio_api/upload", body, content_type)
    return {"path": path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def _call(url: str, api_name: str, data: list) -> tuple[str, object]:
    """Calls the endpoint `api_name` with `data`: (the last event, "complete" or "error", and its data)."""
    body = json.dumps({"data": data}).encode()
    event_id = _post(url + f"/gradio_api/call/{api_name}", body, "application/json")["event_id"]
    with urllib.request.urlopen(url + f"/gradio_api/call/{api_name}/{event_id}", timeout=120) as response:
        lines = response.read().decode().splitlines()
    event = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")][-1]
    data = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")][-1]
    return event, data


def _app_message(url: str, api_name: str, data: list) -> str:
    event, answer = _call(url, api_name, data)
    assert event == "error", answer
    assert isinstance(answer, dict) and answer.get("error"), f"no message for the visitor: {answer}"
    return answer["error"]


def _encoded(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _png(size=32) -> bytes:
    return _encoded(PIL.Image.new("RGB", (size, size), (30, 60, 200)))


def _layer(size=32) -> bytes:
    """A transparent layer with a painted square, as the editor sends it."""
    pixels = np.zeros((size, size, 4), dtype=np.uint8)
    pixels[8:20, 8:20] = (255, 255, 255, 128)
    return _encoded(PIL.Image.fromarray(pixels))


def _generate(**change) -> list:
    values = {
        "prompt": PROMPT,
        "negative": "",
        "guidance": 3.0,
        "steps": 2,
        "sampler": ANCESTRAL,
        "seed": 0,
        "random_seed": False,
        "num_images": 1,
        "clip": 0.0,
        "upsample": False,
        "upsample_steps": 2,
        "upsample_sampler": DDIM,
    }
    return list({**values, **change}.values())


def _edit(editor, **change) -> list:
    values = {
        "editor": editor,
        "prompt": PROMPT,
        "strength": 1.0,
        "guidance": 5.0,
        "steps": 2,
        "sampler": ANCESTRAL,
        "seed": 0,
        "random_seed": False,
        "upsample": False,
        "upsample_steps": 2,
        "upsample_sampler": DDIM,
    }
    return list({**values, **change}.values())


def _img2img(image, **change) -> list:
    values = {
        "image": image,
        "prompt": PROMPT,
        "negative": "",
        "strength": 0.8,
        "guidance": 3.0,
        "steps": 5,
        "sampler": ANCESTRAL,
        "seed": 0,
        "random_seed": False,
        "num_images": 1,
        "clip": 0.0,
    }
    return list({**values, **change}.values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seed": "abc"}, "Seed must be a number, got 'abc'."),
        ({"seed": -1}, "Seed must be between 0 and 4.29497e+09, got -1."),
        ({"random_seed": "false"}, "Random seed must be true or false, got 'false'."),
        ({"steps": "many"}, f"Steps of {ANCESTRAL} must be a number, got 'many'."),
        ({"guidance": [3]}, "Guidance scale must be a number, got [3]."),
        ({"num_images": {"n": 2}}, "Number of images must be a number, got {'n': 2}."),
        ({"sampler": "Euler"}, "Unknown sampler 'Euler'; choose one of: "),
        ({"upsample": "yes"}, "Upsample must be true or false, got 'yes'."),
        ({"clip": "1e999"}, "CLIP guidance scale must be between 0 and 30, got 1e999."),
    ],
)
def test_generate_answers_values_of_the_wrong_type_with_the_apps_message(app_server, change, message):
    url, _, _ = app_server
    assert _app_message(url, "generate", _generate(**change)).startswith(message)


def test_img2img_and_edit_answer_wrong_types_and_shapes_with_the_apps_message(app_server):
    url, _, _ = app_server
    image = _upload(url, "in.png", _png())
    assert _app_message(url, "img2img", _img2img(image, strength="x")) == "Strength must be a number, got 'x'."
    assert _app_message(url, "img2img", _img2img("abc")) == (
        'The starting image must be an uploaded file, {"path": ..., "meta": {"_type": "gradio.FileData"}}, '
        "got 'abc'."
    )
    editor = {"background": image, "layers": [_upload(url, "layer.png", _layer())], "composite": None}
    assert _app_message(url, "edit", _edit(editor, seed="abc")) == "Seed must be a number, got 'abc'."
    assert _app_message(url, "edit", _edit("abc")).startswith("The image editor's value must be a dict of uploaded")
    event, _ = _call(url, "edit", _edit(editor))
    assert event == "complete"  # the same values, rightly typed


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("layer.zip", b"PK\x03\x04" + b"\0" * 100),
        ("layer.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="32" height="32"><rect width="9"/></svg>'),
    ],
)
def test_editor_layers_that_are_not_images_get_the_apps_message(app_server, name, content):
    url, _, _ = app_server
    layer = _upload(url, name, content)
    editor = {"background": _upload(url, "in.png", _png()), "layers": [layer], "composite": None}
    assert _app_message(url, "edit", _edit(editor)) == f"The painted layer 1 {NOT_AN_IMAGE}."


def test_the_editor_bomb_is_refused_at_once_without_decoding(app_server, tmp_path, monkeypatch):
    url, _, _ = app_server
    decoded = record_decoding(monkeypatch)
    bomb = _upload(url, "bomb.png", png_bomb(tmp_path / "bomb.png").read_bytes())  # 164 KB, 169 MB decoded
    background = _upload(url, "in.png", _png())
    started = time.perf_counter()
    editor = {"background": background, "layers": [bomb] * 20, "composite": None}
    message = _app_message(url, "edit", _edit(editor))
    assert message == "The image editor sent 20 painted layers: at most 4 are accepted."
    editor = {"background": background, "layers": [bomb] * 4, "composite": bomb}
    assert _app_message(url, "edit", _edit(editor)) == (
        "The painted layer 1 is 13000x13000: too large (at most 4096x4096 pixels)."
    )
    assert time.perf_counter() - started < 5  # Gradio's own preprocess took 87 s on 20 such layers
    assert (13000, 13000) not in decoded


def test_eps_uploads_and_editor_layers_never_run_ghostscript(app_server, tmp_path, monkeypatch):
    url, _, _ = app_server
    ran = fake_ghostscript(monkeypatch, tmp_path)
    written = tmp_path / "written-by-postscript"
    eps = eps_writing(tmp_path / "x.eps", written).read_bytes()
    for name in ("picture.png", "picture.eps"):
        upload = _upload(url, name, eps)
        message = _app_message(url, "img2img", _img2img(upload))
        assert message == f"The image {NOT_AN_IMAGE} (it is EPS)."
        editor = {"background": _upload(url, "in.png", _png()), "layers": [upload], "composite": None}
        assert _app_message(url, "edit", _edit(editor)) == f"The painted layer 1 {NOT_AN_IMAGE} (it is EPS)."
        editor = {"background": upload, "layers": [], "composite": None}
        assert _app_message(url, "edit", _edit(editor)) == f"The image {NOT_AN_IMAGE} (it is EPS)."
    assert not ran.exists() and not written.exists()


# ---------------------------------------------------------------------------------------------------------------
# The page's way: the editor's images go first to `accept_blobs`, then the request names them by an id


def _editor_id(url: str) -> int:
    with urllib.request.urlopen(url + "/config", timeout=30) as response:
        config = json.loads(response.read())
    (found,) = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "edit-editor"]
    return found


def _send_blob(url: str, editor_id: int, blob_id: str, kind: str, data: bytes, index="null") -> int:
    fields = {
        "component_id": editor_id,
        "session_hash": "test-session",
        "fn_name": "accept_blobs",
        "id": blob_id,
        "type": kind,
        "index": index,
    }
    body, content_type = _multipart(fields, [("file", f"{kind}.png", data)])
    headers = {"Content-Type": content_type}
    request = urllib.request.Request(url + "/gradio_api/component_server", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_pages_editor_images_are_read_through_the_gate(app_server, tmp_path):
    url, _, _ = app_server
    editor_id = _editor_id(url)
    good, bomb = uuid.uuid4().hex, uuid.uuid4().hex
    bomb_layer = png_declaring(tmp_path / "bomb.png", 13000, 13000).read_bytes()
    for blob_id, layer in ((good, _layer()), (bomb, bomb_layer)):
        assert _send_blob(url, editor_id, blob_id, "background", _png()) == 200
        assert _send_blob(url, editor_id, blob_id, "layer", layer, index="0") == 200
    assert _app_message(url, "edit", _edit({"id": bomb})) == (
        "The painted layer 1 is 13000x13000: too large (at most 4096x4096 pixels)."
    )
    event, data = _call(url, "edit", _edit({"id": good}))
    assert event == "complete", data
    # a layer index past the limit is refused before Gradio makes a list that long
    started = time.perf_counter()
    assert _send_blob(url, editor_id, uuid.uuid4().hex, "layer", _layer(), index="1000000000") != 200
    assert time.perf_counter() - started < 5


def test_the_editor_holds_the_images_of_at_most_a_queue_of_requests(app_server):
    from gradio.components import ImageEditor
    from gradio.data_classes import DataWithFiles

    from diffusers_glide.app.interface import QUEUE_SIZE

    _, models, _ = app_server
    (editor,) = [block for block in build_app(models).blocks.values() if isinstance(block, ImageEditor)]
    for number in range(QUEUE_SIZE + 8):
        data = {"id": f"request-{number}", "type": "background", "index": "null"}
        editor.accept_blobs(DataWithFiles(data=data, files=[("background.png", b"x")]))
    assert list(editor.blob_storage) == [f"request-{number}" for number in range(8, QUEUE_SIZE + 8)]
