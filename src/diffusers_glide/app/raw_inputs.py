"""What Gradio hands the app's callbacks: every value as the visitor sent it, and images undecoded.

Before a callback runs, Gradio checks and converts each input in its components' `preprocess`. Through the API a
visitor sends any JSON, and there Gradio fails with no message for the visitor ("The upstream Gradio app has raised
an exception"): `gr.Number` compares the string "abc" with its minimum (a TypeError), `gr.Image` and
`gr.ImageEditor` open every image with any format Pillow knows (EPS by running Ghostscript) and any size (the
editor decodes and re-encodes each layer: twenty layers of a small PNG declaring 13000x13000 held the queue for
87 s). So the app's controls hand their values over unchanged, images as file paths (or the bytes the editor's page
sent), and the callbacks check everything with the app's own messages, reading images through the image gate
(`uploads.py`, `diffusers_glide.image_files`).

Each change is made on the component instance: a subclass of a Gradio component makes Gradio write a .pyi stub
next to its module.
"""

from __future__ import annotations

import gradio as gr
import pydantic

from .callbacks import shown
from .uploads import MAX_EDITOR_LAYERS

# the controls whose values the callbacks check themselves (callbacks.py: `_number`, `_flag`, `_sampler`);
# gr.Textbox makes a string of anything (it cannot fail), gr.State is not sent by the page
CHECKED_BY_THE_CALLBACKS = (gr.Number, gr.Slider, gr.Checkbox, gr.Dropdown)
UPLOADED_FILE = 'an uploaded file, {"path": ..., "meta": {"_type": "gradio.FileData"}}'
EDITOR_FILES = 'a dict of uploaded files, {"background": file, "layers": [file, ...], "composite": file}'


def pass_values_as_sent(demo: gr.Blocks) -> None:
    """Every number, slider, checkbox and dropdown of `demo` hands the callbacks its value as sent."""
    for block in demo.blocks.values():
        if isinstance(block, CHECKED_BY_THE_CALLBACKS):
            block.preprocess = _as_sent


def pass_upload_path(image: gr.Image, what: str) -> None:
    """`image` (an input) hands the callbacks the uploaded file's path, undecoded (None when nothing is uploaded);
    JSON of another shape is answered with a message that starts with `what`."""
    image.preprocess = _uploaded_path
    image.data_model = _checked_model(image.data_model, what, UPLOADED_FILE)


def pass_editor_files(editor: gr.ImageEditor, max_pending: int) -> None:
    """`editor` hands the callbacks `{"background", "layers", "composite"}` undecoded: the uploaded files' paths,
    or the bytes the page sent ahead of its request. The page's images are held for at most `max_pending`
    requests."""
    editor.preprocess = _editor_files(editor)
    editor.accept_blobs = _bounded_blobs(editor, max_pending)
    editor.data_model = _checked_model(editor.data_model, "The image editor's value", EDITOR_FILES)


def _as_sent(payload):
    return payload


def _uploaded_path(payload) -> str | None:
    return None if payload is None else payload.path


def _checked_model(model: type[pydantic.BaseModel], what: str, expected: str) -> type[pydantic.BaseModel]:
    """`model` (a component's `data_model`: Gradio checks an upload's JSON against it before any callback runs)
    answering JSON of another shape with a message for the visitor instead of a generic error. The same name and
    fields: the API's description is unchanged."""

    def model_validate(cls, value, **kwargs):
        try:
            return model.model_validate.__func__(cls, value, **kwargs)
        except pydantic.ValidationError:
            raise gr.Error(f"{what} must be {expected}, got {shown(value, repr_=True)}.") from None

    namespace = {"__module__": model.__module__, "model_validate": classmethod(model_validate)}
    return type(model.__name__, (model,), namespace)


def _editor_files(editor: gr.ImageEditor):
    """The editor's `preprocess`, which decodes nothing."""

    def preprocess(payload) -> dict | None:
        if payload is None:
            return None
        if payload.id is not None:  # the page's way: its images came first, through `accept_blobs`
            payload = editor.blob_storage.pop(payload.id, None)
            if payload is None:
                return {"background": None, "layers": [], "composite": None}
        return {
            "background": _file(payload.background),
            "layers": [_file(layer) for layer in payload.layers if layer is not None],
            "composite": _file(payload.composite),
        }

    return preprocess


def _file(value) -> str | bytes | None:
    """An editor image as sent: an uploaded file (its path), or bytes."""
    return value.path if hasattr(value, "path") else value


def _bounded_blobs(editor: gr.ImageEditor, max_pending: int):
    """`gr.ImageEditor.accept_blobs` (the server function that takes the page's images ahead of its request),
    bounded: a layer index below MAX_EDITOR_LAYERS (Gradio allocates a list as long as the index it is sent), and
    the images of at most `max_pending` requests held (Gradio keeps them until their request comes, which an API
    client need never send), the oldest dropped first."""
    accept = editor.accept_blobs

    def accept_blobs(data):
        index = data.data.get("index")
        if data.data.get("type") == "layer" and not (
            isinstance(index, str) and index.isdigit() and int(index) < MAX_EDITOR_LAYERS
        ):
            raise gr.Error(f"The image editor sends at most {MAX_EDITOR_LAYERS} painted layers, got layer {index!r}.")
        result = accept(data)
        while len(editor.blob_storage) > max_pending:
            editor.blob_storage.pop(next(iter(editor.blob_storage)))
        return result

    accept_blobs._is_server_fn = True  # what Gradio's `@server` marks: callable from the page
    return accept_blobs
