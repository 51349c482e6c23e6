"""The web app's callbacks (what its buttons call), run on the embedded models without a browser.

Each result is compared with the same pipeline call made directly on separately loaded pipelines, so the app is
checked to pass every control through (prompt, seed, sampler, steps, strength, masks) and to change nothing else.
"""

import json
import re
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler

from diffusers_glide import (
    GlideImg2ImgPipeline,
    GlideInpaintPipeline,
    GlidePipeline,
    GlideScheduler,
    GlideUpsamplePipeline,
    embedded_model_path,
)
from diffusers_glide.app import SAMPLERS, AppModels, GlideAppCallbacks, load_app_models
from diffusers_glide.app.interface import build_app
from diffusers_glide.app.models import ANCESTRAL, DDIM, DPM_SOLVER, default_sampling

PROMPT = "a red circle on a blue background"


@pytest.fixture(scope="module")
def models():
    return load_app_models()


@pytest.fixture()
def app(models):
    return GlideAppCallbacks(models)


def _reference(pipeline_class, kind: str, sampler: str = ANCESTRAL):
    """A separately loaded pipeline with the sampler of the app's dropdown."""
    pipe = pipeline_class.from_pretrained(embedded_model_path(kind))
    if sampler == DPM_SOLVER:
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    else:
        pipe.scheduler = GlideScheduler.from_config(
            pipe.scheduler.config, sampler="ddim" if sampler == DDIM else "ddpm"
        )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _pixels(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def _assert_same_image(actual, expected):
    difference = np.abs(_pixels(actual) - _pixels(expected))
    assert actual.size == expected.size
    assert difference.max() == 0, f"max abs difference {difference.max()} (uint8)"


def _scene(path, size=32) -> str:
    """A blue picture with a red square, saved as PNG: what a user uploads."""
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[...] = (30, 60, 200)
    pixels[size // 8 : size // 2, size // 8 : size // 2] = (220, 30, 30)
    PIL.Image.fromarray(pixels).save(path)
    return str(path)


def _layer(path, size=32, box=(16, 16, 28, 28), colour=(255, 255, 255, 128)) -> str:
    """A transparent layer with one painted rectangle (x0, y0, x1, y1 exclusive), as the editor sends it."""
    pixels = np.zeros((size, size, 4), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = colour
    PIL.Image.fromarray(pixels).save(path)
    return str(path)


def _composite(background: str, layer: str, path) -> str:
    image = PIL.Image.alpha_composite(PIL.Image.open(background).convert("RGBA"), PIL.Image.open(layer))
    image.save(path)
    return str(path)


def _editor_value(tmp_path, box=(16, 16, 28, 28), colour=(255, 255, 255, 128), size=32) -> dict:
    background = _scene(tmp_path / "background.png", size)
    layer = _layer(tmp_path / "layer.png", size, box, colour)
    return {
        "background": background,
        "layers": [layer],
        "composite": _composite(background, layer, tmp_path / "c.png"),
    }


def _message(excinfo) -> str:
    return excinfo.value.message


# ---------------------------------------------------------------------------------------------------------------
# Generate


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_generate_is_the_pipeline_call_with_the_controls_values(app, sampler):
    gallery, info, images = app.generate(PROMPT, "", 3.0, 5, sampler, 7, False, 2)
    expected = _reference(GlidePipeline, "base", sampler)(
        PROMPT,
        num_inference_steps=5,
        guidance_scale=3.0,
        num_images_per_prompt=2,
        generator=torch.Generator().manual_seed(7),
    ).images
    captions = [re.sub(r"\d+\.\d s$", "T s", caption) for _, caption in gallery]  # each image's own caption
    assert captions == [f"image {n} of 2 · seed 7 · {sampler} · 5 steps · T s" for n in (1, 2)]
    for (image, _), reference in zip(gallery, expected, strict=True):
        _assert_same_image(image, reference)
    assert images == [image for image, _ in gallery]
    assert info.startswith(f"Seed 7 · {sampler}, 5 steps · 32x32 · ")


def test_generate_negative_prompt_and_clip_guidance_reach_the_pipeline(app):
    gallery, _, _ = app.generate(PROMPT, "a green square", 3.0, 5, ANCESTRAL, 1, False, 1, 2.0)
    reference = _reference(GlidePipeline, "base")
    reference.load_clip_guidance(embedded_model_path("clip"))
    expected = reference(
        PROMPT,
        negative_prompt="a green square",
        num_inference_steps=5,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(1),
        clip_guidance_scale=2.0,
    ).images[0]
    _assert_same_image(gallery[0][0], expected)


def test_generate_then_upsample_is_the_cascade(app):
    gallery, info, _ = app.generate(PROMPT, "", 3.0, 4, ANCESTRAL, 3, False, 1, 0.0, True, 3, DPM_SOLVER)
    generator = torch.Generator().manual_seed(3)
    low = _reference(GlidePipeline, "base")(
        PROMPT, num_inference_steps=4, guidance_scale=3.0, generator=generator
    ).images
    expected = _reference(GlideUpsamplePipeline, "upsample", DPM_SOLVER)(
        PROMPT, image=low, num_inference_steps=3, generator=generator
    ).images[0]
    _assert_same_image(gallery[0][0], expected)
    assert gallery[0][0].size == (128, 128)
    assert "upsampled with DPM-Solver++, 3 steps · 128x128" in info


def test_random_seed_is_reported_and_reproduces_the_image(app):
    gallery, info, _ = app.generate(PROMPT, "", 3.0, 3, ANCESTRAL, 0, True, 1)
    seed = int(info.split(" ")[1])
    again, _, _ = app.generate(PROMPT, "", 3.0, 3, ANCESTRAL, seed, False, 1)
    _assert_same_image(gallery[0][0], again[0][0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt": "  "}, "Write a prompt first."),
        ({"prompt": None}, "Write a prompt first."),
        ({"steps": 1}, f"Steps of {ANCESTRAL} must be between 2 and 1000, got 1."),
        ({"steps": 2.5}, f"Steps of {ANCESTRAL} must be a whole number, got 2.5."),
        ({"steps": 1000, "sampler": DPM_SOLVER}, f"Steps of {DPM_SOLVER} must be between 1 and 999, got 1000."),
        ({"guidance_scale": float("nan")}, "Guidance scale must be between 0 and 30, got nan."),
        ({"num_images": 9}, "Number of images must be between 1 and 8, got 9."),
        ({"sampler": "Euler"}, "Unknown sampler 'Euler'; choose one of: " + ", ".join(SAMPLERS) + "."),
        ({"seed": -1}, "Seed must be between 0 and 4.29497e+09, got -1."),
        ({"seed": "abc"}, "Seed must be a number, got 'abc'."),
        ({"seed": "9" * 100}, f"Seed must be between 0 and 4.29497e+09, got {'9' * 32}... (100 characters)."),
        ({"random_seed": "false"}, "Random seed must be true or false, got 'false'."),
        ({"upsample": 1}, "Upsample must be true or false, got 1."),
        ({"sampler": ["Euler"]}, "Unknown sampler ['Euler']; choose one of: " + ", ".join(SAMPLERS) + "."),
        ({"clip_guidance_scale": -1}, "CLIP guidance scale must be between 0 and 30, got -1."),
        ({"upsample": True, "upsample_steps": 0}, f"Upsampling steps of {DDIM} must be between 2 and 1000, got 0."),
    ],
)
def test_generate_refuses_bad_controls_with_a_message(app, change, message):
    values = {
        "prompt": PROMPT,
        "negative_prompt": "",
        "guidance_scale": 3.0,
        "steps": 5,
        "sampler": ANCESTRAL,
        "seed": 0,
        "random_seed": False,
        "num_images": 1,
        "clip_guidance_scale": 0.0,
        "upsample": False,
        "upsample_steps": 5,
        "upsample_sampler": DDIM,
    }
    with pytest.raises(gr.Error) as excinfo:
        app.generate(**{**values, **change})
    assert _message(excinfo) == message


def test_the_steps_slider_offers_what_the_chosen_sampler_runs(app):
    from diffusers_glide.app.interface import _steps_for

    base = app.models.base
    # DPM-Solver++ visits 999 distinct timesteps at most (1000 steps gave NaN at step 501); GLIDE's samplers 2 to 1000
    assert _steps_for(base, DPM_SOLVER, 1000) == gr.update(minimum=1, maximum=999, value=999)
    assert _steps_for(base, ANCESTRAL, 1) == gr.update(minimum=2, maximum=1000, value=2)
    assert _steps_for(base, DDIM, "many") == gr.update(minimum=2, maximum=1000, value=2)
    assert _steps_for(base, "Euler", 5) == gr.update()


def test_pipeline_input_errors_become_page_messages(app, tmp_path):
    path = _scene(tmp_path / "in.png")
    with pytest.raises(gr.Error) as excinfo:  # the image-to-image pipeline's own rule: a step must be left
        app.img2img(path, PROMPT, "", 0.05, 3.0, 5, ANCESTRAL, 0, False, 1)
    assert _message(excinfo).startswith("`strength`=0.05 of 5 inference steps leaves no step to run")


def test_a_server_without_clip_refuses_clip_guidance(models):
    app = GlideAppCallbacks(AppModels(base=_reference(GlidePipeline, "base")))
    assert not app.models.has_clip
    with pytest.raises(gr.Error) as excinfo:
        app.generate(PROMPT, "", 3.0, 5, ANCESTRAL, 0, False, 1, 1.0)
    assert _message(excinfo) == "This server has no CLIP model loaded: set the CLIP guidance scale to 0."
    with pytest.raises(gr.Error) as excinfo:
        app.generate(PROMPT, "", 3.0, 5, ANCESTRAL, 0, False, 1, 0.0, True, 5, DDIM)
    assert _message(excinfo) == "This server has no upsampler loaded."


# ---------------------------------------------------------------------------------------------------------------
# Edit


def test_edit_repaints_the_painted_region_and_keeps_every_other_pixel(app, tmp_path):
    value = _editor_value(tmp_path)
    result, mask, info = app.edit(value, "a green square", 1.0, 5.0, 5, ANCESTRAL, 4, False)
    painted = np.zeros((32, 32), dtype=bool)
    painted[16:28, 16:28] = True
    assert np.array_equal(np.asarray(mask) > 0, painted)
    source = _pixels(PIL.Image.open(value["background"]))
    assert np.array_equal(_pixels(result)[~painted], source[~painted])
    expected = _reference(GlideInpaintPipeline, "base-inpaint")(
        "a green square",
        image=PIL.Image.open(value["background"]),
        mask_image=mask,
        num_inference_steps=5,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(4),
    ).images[0]
    _assert_same_image(result, expected)
    assert info.startswith("Seed 4 · strength 1 · GLIDE ancestral (DDPM), 5 steps · 32x32")


def test_edit_below_strength_one_starts_from_the_painted_sketch(app, tmp_path):
    value = _editor_value(tmp_path, colour=(0, 255, 0, 255))
    result, mask, _ = app.edit(value, "a green square", 0.5, 5.0, 6, ANCESTRAL, 2, False)
    sketch = PIL.Image.open(value["composite"]).convert("RGB")  # inside the mask, the painted colours
    expected = _reference(GlideInpaintPipeline, "base-inpaint")(
        "a green square",
        image=sketch,
        mask_image=mask,
        strength=0.5,
        num_inference_steps=6,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(2),
    ).images[0]
    _assert_same_image(result, expected)


def test_edit_with_the_inpainting_upsampler_keeps_the_pixels_outside_at_the_upsampled_size(app, tmp_path):
    value = _editor_value(tmp_path)
    result, mask, info = app.edit(value, "a green square", 1.0, 5.0, 4, ANCESTRAL, 0, False, True, 3, DPM_SOLVER)
    assert result.size == mask.size == (128, 128)
    keep = np.asarray(mask) == 0
    kept = np.zeros((128, 128), dtype=bool)
    kept[...] = True
    kept[64:112, 64:112] = False  # the painted 32x32 cells, 4x4 pixels each
    assert np.array_equal(keep, kept)
    source = _pixels(PIL.Image.open(value["background"]).resize((128, 128), PIL.Image.BICUBIC))
    assert np.array_equal(_pixels(result)[keep], source[keep])
    assert "upsampled with DPM-Solver++, 3 steps · 128x128" in info


def test_a_thin_stroke_on_a_large_image_still_marks_the_pixels_it_crosses(tmp_path):
    from diffusers_glide.app.uploads import EditorInput

    value = _editor_value(tmp_path, box=(40, 10, 41, 120), size=128)  # one pixel wide at 128x128
    mask = EditorInput(value).repaint_mask(32)
    assert np.array_equal(np.argwhere(mask.any(axis=0)).ravel(), [10])  # column 40 // 4
    assert mask[:, 10].sum() == 28  # rows 10..119 -> cells 2..29


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "Upload an image to edit first"),
        ({"background": None, "layers": [], "composite": None}, "Upload an image to edit first"),
        (
            "no-stroke",
            "Paint over the region to repaint with the brush first: no brush stroke was found on the image.",
        ),
        ("not-an-image", "The image is not a PNG, JPEG, WebP, BMP, GIF or TIFF image."),
    ],
)
def test_edit_refuses_missing_images_and_masks_with_a_message(app, tmp_path, value, message):
    if value == "no-stroke":
        value = _editor_value(tmp_path, box=(0, 0, 0, 0))
    elif value == "not-an-image":
        (tmp_path / "bad.png").write_text("not an image")
        value = {"background": str(tmp_path / "bad.png"), "layers": [], "composite": None}
    with pytest.raises(gr.Error) as excinfo:
        app.edit(value, "a green square", 1.0, 5.0, 5, ANCESTRAL, 0, False)
    assert _message(excinfo).startswith(message)


def test_use_result_and_undo_walk_the_edit_history(app, tmp_path):
    value = _editor_value(tmp_path)
    result, _, _ = app.edit(value, "a green square", 1.0, 5.0, 3, ANCESTRAL, 0, False)
    editor, history, cleared = app.use_result(result, value, [])
    assert editor == {"background": result, "layers": [], "composite": result} and cleared is None
    assert len(history) == 1
    _assert_same_image(history[0], PIL.Image.open(value["background"]))
    previous, history, cleared = app.undo(history)
    assert previous["layers"] == [] and previous["composite"] is previous["background"]
    _assert_same_image(previous["background"], PIL.Image.open(value["background"]))
    assert history == [] and cleared is None
    with pytest.raises(gr.Error) as excinfo:
        app.undo(history)
    assert _message(excinfo) == "Nothing to undo."
    with pytest.raises(gr.Error) as excinfo:
        app.use_result(None, value, [])
    assert _message(excinfo) == "Run an edit first: there is no result to continue from."


def test_send_to_editor_takes_the_selected_gallery_image(app):
    images = [PIL.Image.new("RGB", (32, 32), colour) for colour in ("red", "green")]
    assert app.send_to_editor(images, 1) == {"background": images[1], "layers": [], "composite": images[1]}
    assert app.send_to_editor(images, None)["background"] is images[0]
    with pytest.raises(gr.Error) as excinfo:
        app.send_to_editor([], None)
    assert _message(excinfo) == "Generate an image first."


# ---------------------------------------------------------------------------------------------------------------
# Image to image, upscale


def test_img2img_is_the_pipeline_call(app, tmp_path):
    path = _scene(tmp_path / "in.png", size=64)  # resized to the model's 32x32 as the pipeline resizes
    gallery, info = app.img2img(path, "a green square on a white background", "", 0.6, 3.0, 10, DDIM, 5, False, 1)
    expected = _reference(GlideImg2ImgPipeline, "base", DDIM)(
        "a green square on a white background",
        image=PIL.Image.open(path),
        strength=0.6,
        num_inference_steps=10,
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(5),
    ).images[0]
    _assert_same_image(gallery[0][0], expected)
    assert info.startswith("Seed 5 · strength 0.6 · GLIDE DDIM, 10 steps")


def test_upscale_is_the_upsampler_on_the_image_at_the_base_size(app, tmp_path):
    path = _scene(tmp_path / "in.png", size=32)
    result, info = app.upscale(path, PROMPT, 4, DPM_SOLVER, 9, False)
    expected = _reference(GlideUpsamplePipeline, "upsample", DPM_SOLVER)(
        PROMPT, image=PIL.Image.open(path), num_inference_steps=4, generator=torch.Generator().manual_seed(9)
    ).images[0]
    _assert_same_image(result, expected)
    assert info.startswith("Seed 9 · DPM-Solver++, 4 steps · 32x32 -> 128x128")


def test_uploads_refuse_huge_and_unreadable_files(app, tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(gr.Error) as excinfo:
        app.upscale(str(tmp_path / "bad.png"), PROMPT, 4, DPM_SOLVER, 0, False)
    assert _message(excinfo) == "The image is not a PNG, JPEG, WebP, BMP, GIF or TIFF image."
    PIL.Image.new("L", (5000, 4000)).save(tmp_path / "huge.png")  # 20 MP, a few kB of PNG
    with pytest.raises(gr.Error) as excinfo:
        app.img2img(str(tmp_path / "huge.png"), PROMPT, "", 0.5, 3.0, 5, ANCESTRAL, 0, False, 1)
    assert _message(excinfo) == "The image is 5000x4000: too large (at most 4096x4096 pixels)."
    with pytest.raises(gr.Error) as excinfo:
        app.upscale(None, PROMPT, 4, DPM_SOLVER, 0, False)
    assert _message(excinfo) == "Upload an image first."


# ---------------------------------------------------------------------------------------------------------------
# One request at a time, and Stop


class _Session:
    def __init__(self, session_hash):
        self.session_hash = session_hash


def test_stop_ends_the_running_request_at_the_next_step_and_frees_the_pipelines(app, models):
    calls = []
    forward = models.base.unet.forward

    def forward_then_press_stop(*args, **kwargs):
        calls.append(1)
        app.cancel(_Session("alice"))
        return forward(*args, **kwargs)

    models.base.unet.forward = forward_then_press_stop
    try:
        with pytest.raises(gr.Error) as excinfo:
            app.generate(PROMPT, "", 3.0, 20, ANCESTRAL, 0, False, 1, request=_Session("alice"))
    finally:
        del models.base.unet.forward
    assert _message(excinfo) == "Stopped."
    assert len(calls) == 1  # stopped after the first of 20 steps
    gallery, _, _ = app.generate(PROMPT, "", 3.0, 2, ANCESTRAL, 0, False, 1, request=_Session("alice"))
    assert gallery[0][0].size == (32, 32)


def test_stop_from_another_session_does_not_stop_this_one(app):
    app.cancel(_Session("bob"))  # nothing running for bob: no effect
    gallery, _, _ = app.generate(PROMPT, "", 3.0, 2, ANCESTRAL, 0, False, 1, request=_Session("alice"))
    assert len(gallery) == 1


def test_concurrent_requests_with_different_samplers_give_the_sequential_results(app):
    expected = {
        sampler: app.generate(PROMPT, "", 3.0, 4, sampler, 11, False, 1)[0][0][0]
        for sampler in (ANCESTRAL, DPM_SOLVER)
    }
    results, errors = {}, []

    def run(sampler):
        try:
            for _ in range(3):
                results.setdefault(sampler, []).append(
                    app.generate(PROMPT, "", 3.0, 4, sampler, 11, False, 1)[0][0][0]
                )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(sampler,)) for sampler in (ANCESTRAL, DPM_SOLVER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for sampler, images in results.items():
        for image in images:
            _assert_same_image(image, expected[sampler])


# ---------------------------------------------------------------------------------------------------------------
# Models


def test_the_controls_start_at_the_command_lines_samplers_and_steps():
    # text to image, image to image and upsampling: the fast path, DPM-Solver++ with 15 and 5 steps (the CLI's
    # `generate`, `img2img` and `upsample`); inpainting and its upsampler: the folder's scheduler configuration
    # (the CLI's `inpaint` and `upsample --mask`), read here from the embedded folders' files
    configured = {}
    for kind in ("base-inpaint", "upsample-inpaint"):
        config = json.loads((Path(embedded_model_path(kind)) / "scheduler" / "scheduler_config.json").read_text())
        sampler = DDIM if config["sampler"] == "ddim" else ANCESTRAL
        respacing = config["timestep_respacing"]
        configured[kind] = (sampler, 27 if respacing == "fast27" else int(respacing))
    assert configured == {"base-inpaint": (ANCESTRAL, 50), "upsample-inpaint": (DDIM, 27)}
    expected = {
        "generate": (DPM_SOLVER, 15),
        "generate-upsample": (DPM_SOLVER, 5),
        "img2img": (DPM_SOLVER, 15),
        "upscale": (DPM_SOLVER, 5),
        "edit": configured["base-inpaint"],
        "edit-upsample": configured["upsample-inpaint"],
    }
    models = load_app_models()  # as loaded: the module's models have had their schedulers swapped
    blocks = build_app(models).blocks.values()
    controls = {block.elem_id: block.value for block in blocks if isinstance(block, (gr.Dropdown, gr.Slider))}
    assert {prefix: (controls[f"{prefix}-sampler"], controls[f"{prefix}-steps"]) for prefix in expected} == expected
    assert default_sampling("base", models.base) == (DPM_SOLVER, 15)
    assert default_sampling("upsample-inpaint", models.inpaint_upsampler) == configured["upsample-inpaint"]


def test_load_app_models_serves_the_embedded_cascade_or_only_the_stages_named():
    everything = load_app_models()
    assert everything.has_clip
    assert everything.inpaint is not None and everything.upsampler is not None
    assert everything.inpaint_upsampler.unet.config.inpainting
    only_base = load_app_models(model=embedded_model_path("base"))
    assert (only_base.inpaint, only_base.upsampler, only_base.inpaint_upsampler) == (None, None, None)
    assert not only_base.has_clip
    with_inpaint = load_app_models(model=embedded_model_path("base"), inpaint="default")
    assert with_inpaint.inpaint.unet.config.inpainting


def test_app_models_refuse_stages_of_different_cascades(models):
    with pytest.raises(ValueError, match="The inpainting model makes 128x128 images but the base model 32x32 ones"):
        AppModels(base=models.base, inpaint=models.inpaint_upsampler)
    with pytest.raises(ValueError, match="The upsampler is an inpainting upsampler"):
        AppModels(base=models.base, upsampler=models.inpaint_upsampler)
    with pytest.raises(ValueError, match="The inpainting upsampler is not an inpainting model"):
        AppModels(base=models.base, inpaint_upsampler=models.upsampler)


def test_a_non_square_upload_is_stretched_and_the_page_says_so(app, tmp_path):
    PIL.Image.new("RGB", (64, 48), (200, 30, 30)).save(tmp_path / "wide.png")
    _, info = app.upscale(str(tmp_path / "wide.png"), PROMPT, 2, DPM_SOLVER, 0, False)
    assert info.endswith(" · stretched from 64x48 to 32x32 (crop it square to keep its shape)")
    _, info = app.upscale(_scene(tmp_path / "square.png", size=48), PROMPT, 2, DPM_SOLVER, 0, False)
    assert "stretched" not in info


def test_the_undo_history_keeps_the_last_twenty_images(app, tmp_path):
    from diffusers_glide.app.callbacks import MAX_HISTORY

    value = _editor_value(tmp_path)
    history = [PIL.Image.new("RGB", (32, 32), (index, 0, 0)) for index in range(MAX_HISTORY)]
    result = PIL.Image.new("RGB", (32, 32), "green")
    _, history, _ = app.use_result(result, value, history)
    assert MAX_HISTORY == 20 and len(history) == 20
    assert history[0].getpixel((0, 0)) == (1, 0, 0)  # the oldest went
    _assert_same_image(history[-1], PIL.Image.open(value["background"]))


def test_float16_models_load_without_warnings(capfd):
    # float16 runs on the CPU: diffusers' per-module "cannot run in float16 on the CPU" warning is not printed
    models = load_app_models(model=embedded_model_path("base"), dtype=torch.float16)
    assert models.base.unet.dtype == torch.float16
    assert "float16" not in capfd.readouterr().err
