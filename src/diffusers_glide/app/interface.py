"""The page of the web app: its tabs, their controls, and how the controls are wired to the callbacks."""

import functools
from pathlib import Path

import gradio as gr

from .callbacks import MAX_GUIDANCE, MAX_IMAGES, MAX_SEED, GlideAppCallbacks
from .help import ENTER_HINT, PromptHelp, models_line, prompt_help
from .models import SAMPLERS, AppModels, default_sampling, load_app_models, steps_range
from .raw_inputs import pass_editor_files, pass_upload_path, pass_values_as_sent
from .uploads import UploadError, read_upload

# every pipeline call joins one queue and runs alone: the pipelines share modules and swap schedulers
PIPELINE_QUEUE = {"concurrency_id": "pipelines", "concurrency_limit": 1}
QUEUE_SIZE = 32  # requests waiting; more are refused
# an upload checked as it arrives: queued (Gradio shows a warning only from the queue), alongside any pipeline call
UPLOAD_CHECK = {"concurrency_limit": None, "show_progress": "hidden"}
# small images shown large, pixel by pixel (GLIDE's images are 64x64, the embedded ones 32x32)
CSS = (
    ".glide-image img { image-rendering: pixelated; object-fit: contain; width: 100%; height: 100%; } "
    ".glide-gallery img { image-rendering: pixelated; } "
    # each result whole, its caption under it (Gradio shows the caption over the image, and only on hover)
    ".glide-gallery .grid-wrap { height: auto !important; max-height: none !important; overflow: visible; } "
    ".glide-gallery .thumbnail-item { display: flex; flex-direction: column; height: auto; aspect-ratio: auto; } "
    ".glide-gallery .thumbnail-item img { width: 100%; height: auto; aspect-ratio: 1; object-fit: contain; } "
    ".glide-gallery .caption-label { position: static; opacity: 1; visibility: visible; display: block; "
    "max-width: 100%; white-space: normal; transform: none; margin: 4px 0 0; font-size: var(--text-sm); "
    "background: none; color: var(--body-text-color); text-align: center; } "
    # the editor's see-through mask swatch drawn on a checkerboard, so that it shows on a white page
    "#edit-editor button.glide-mask-swatch { opacity: 1 !important; outline: 1px solid #666; "
    "background: linear-gradient(#ffffff80, #ffffff80), repeating-conic-gradient(#888 0 25%, #fff 0 50%) 0 0 / 8px 8px "
    "!important; } "
    # the swatch of the brush's colour (the page marks it: Gradio marks none for the see-through mask)
    "#edit-editor button.color.glide-chosen { box-shadow: 0 0 0 2px var(--body-background-fill), 0 0 0 4px "
    "var(--color-accent) !important; } "
    # narrow screens: the prompt and its button, then the results, then the settings
    "@media (max-width: 720px) { "
    ".glide-main { flex-direction: column !important; flex-wrap: nowrap !important; } "
    ".glide-main > .glide-inputs, .glide-main > .glide-outputs { display: contents !important; } "
    ".glide-main .glide-outputs > * { order: 1; } "
    ".glide-main .glide-settings { order: 2; } "
    ".glide-gallery .thumbnail-item img { max-height: 30vh; } "
    "#edit-editor .icon-button-wrapper.top-panel { top: 30px !important; } "
    "}"
)
IMAGE_HEIGHT = 320  # pixels of the page for each image box
# a see-through white to mark a region, opaque colours to sketch in it
MASK_COLOUR = ("#fefefe", 0.5)  # not the white sketch colour: the palette marks the first swatch of its colour
SKETCH_COLOURS = ["#ffffff", "#000000", "#ff0000", "#00ff00", "#0000ff", "#ffff00", "#ff00ff", "#00ffff", "#808080"]
BRUSH_SIZE = 3  # image pixels: GLIDE's images are small (the editor's brush size control changes it)
EDIT_HELP = (
    "Upload an image (or send one from *Generate*) and **paint over the region to repaint**. At strength 1 the "
    "region is repainted from the prompt alone; below 1 the colours you painted are a sketch that the result follows "
    "(sketch-guided inpainting). *Use the result* continues editing from it; *Undo* goes back one image."
)


# ---------------------------------------------------------------------------------------------------------------
# Controls shared by the tabs


def _sampling_controls(pipe, kind: str, prefix: str, label: str = "") -> tuple[gr.Dropdown, gr.Slider]:
    """The sampler and steps of `pipe`, a stage of `kind`, starting at the command line's defaults
    (`cascade.DEFAULT_SAMPLING`); the slider offers the step counts that the chosen sampler runs."""
    sampler, steps = default_sampling(kind, pipe)
    low, high = steps_range(pipe, sampler)
    with gr.Row():
        dropdown = gr.Dropdown(list(SAMPLERS), value=sampler, label=f"{label}Sampler", elem_id=f"{prefix}-sampler")
        slider = gr.Slider(low, high, value=steps, step=1, label=f"{label}Steps", elem_id=f"{prefix}-steps")
    dropdown.change(lambda chosen, value: _steps_for(pipe, chosen, value), [dropdown, slider], slider, queue=False)
    return dropdown, slider


def _steps_for(pipe, sampler, steps):
    """The steps slider for `sampler`: its range, and the value moved into it."""
    if sampler not in SAMPLERS:  # a value sent through the API: the callbacks answer it
        return gr.update()
    low, high = steps_range(pipe, sampler)
    try:
        value = min(max(int(steps), low), high)
    except (TypeError, ValueError):
        value = low
    return gr.update(minimum=low, maximum=high, value=value)


def _upsampling_controls(upsampler, kind: str, prefix: str) -> tuple[gr.Checkbox, gr.Dropdown, gr.Slider]:
    """Upsampling on/off with its own sampler and steps; hidden when the server has no such upsampler."""
    with gr.Group(visible=upsampler is not None):
        size = upsampler.unet.config.sample_size if upsampler is not None else 0
        enabled = gr.Checkbox(False, label=f"Upsample to {size}x{size}", elem_id=f"{prefix}-upsample")
        if upsampler is not None:
            sampler, steps = _sampling_controls(upsampler, kind, f"{prefix}-upsample", label="Upsampling ")
        else:
            sampler, steps = gr.Dropdown(list(SAMPLERS), visible=False), gr.Slider(visible=False)
    return enabled, sampler, steps


def _seed_controls(prefix: str) -> tuple[gr.Number, gr.Checkbox]:
    with gr.Row():
        seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=MAX_SEED, elem_id=f"{prefix}-seed")
        random_seed = gr.Checkbox(False, label="Random seed", elem_id=f"{prefix}-random-seed")
    return seed, random_seed


def _guidance(value: float, prefix: str, label: str = "Guidance scale (classifier-free; 1 = off)") -> gr.Slider:
    return gr.Slider(0, MAX_GUIDANCE, value=value, step=0.5, label=label, elem_id=f"{prefix}-guidance")


def _strength(value: float, prefix: str, label: str) -> gr.Slider:
    return gr.Slider(0.05, 1.0, value=value, step=0.05, label=label, elem_id=f"{prefix}-strength")


def _clip_scale(models: AppModels, prefix: str) -> gr.Slider:
    label = "CLIP guidance scale (0 = off)"
    return gr.Slider(
        0, MAX_GUIDANCE, value=0.0, step=0.5, label=label, visible=models.has_clip, elem_id=f"{prefix}-clip"
    )


def _prompt_box(page_help: PromptHelp, prefix: str) -> gr.Textbox:
    """A one-line prompt box (Enter submits it) with an example as its placeholder and, for a model that reads a
    closed vocabulary, that vocabulary below it."""
    prompt = gr.Textbox(
        label="Prompt",
        lines=1,
        placeholder=f"e.g. {page_help.placeholder}",
        info=ENTER_HINT,
        elem_id=f"{prefix}-prompt",
    )
    gr.Markdown(page_help.vocabulary, visible=bool(page_help.vocabulary), elem_id=f"{prefix}-vocabulary")
    return prompt


def _examples(page_help: PromptHelp, prompt: gr.Textbox, prefix: str, what: str) -> gr.Examples:
    """The model's example prompts: a click puts one in `prompt`."""
    return gr.Examples(
        [[example] for example in page_help.examples],
        [prompt],
        label=f"Examples ({what})",
        examples_per_page=len(page_help.examples),
        elem_id=f"{prefix}-examples",
    )


def _run_and_stop(label: str, prefix: str) -> tuple[gr.Button, gr.Button]:
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=f"{prefix}-button")
        stop = gr.Button("Stop", elem_id=f"{prefix}-stop")
    return run, stop


def _image_input(label: str, elem_id: str) -> gr.Image:
    """An image upload whose callbacks get the uploaded file's path, not decoded (`raw_inputs.py`): they read it
    through the image gate and say in the page why a file is refused. The widget in the page is Gradio's."""
    upload = gr.Image(
        label=label,
        type="filepath",
        sources=["upload", "clipboard"],
        height=IMAGE_HEIGHT,
        elem_id=elem_id,
        elem_classes="glide-image",
    )
    pass_upload_path(upload, f"The {label.lower()}")
    return upload


def _image_output(label: str, elem_id: str, height: int = IMAGE_HEIGHT) -> gr.Image:
    # PNG: the exact pixels the pipeline made (Gradio's default, webp, is lossy)
    return gr.Image(
        label=label,
        type="pil",
        format="png",
        interactive=False,
        height=height,
        elem_id=elem_id,
        elem_classes="glide-image",
    )


def _gallery(elem_id: str) -> gr.Gallery:
    # each image whole with its caption under it (CSS): the gallery grows with its images, no preview over them
    return gr.Gallery(
        label="Images",
        format="png",
        columns=2,
        height="auto",
        preview=False,
        object_fit="contain",
        elem_id=elem_id,
        elem_classes="glide-gallery",
    )


def _selected_index(event: gr.SelectData) -> int:
    return event.index


def _describe(models: AppModels) -> str:
    size = models.base_size
    stages = [f"text to image at {size}x{size}"]
    if models.has_clip:
        stages.append("CLIP guidance")
    if models.inpaint is not None:
        stages.append("inpainting")
    for upsampler, what in ((models.upsampler, "upsampling"), (models.inpaint_upsampler, "inpainting upsampling")):
        if upsampler is not None:
            stages.append(f"{what} to {upsampler.unet.config.sample_size}x{upsampler.unet.config.sample_size}")
    return "# GLIDE\nText-guided diffusion (OpenAI's GLIDE) with diffusers-glide: " + ", ".join(stages) + "."


STOPPED = "Stopped."
# the page's script: names for what Gradio leaves unnamed (the editor's colour swatches, images with no text), the
# editor's palette closed on a choice, a new result scrolled into view on a narrow screen
HEAD = "<script>" + Path(__file__).with_name("page.js").read_text() + "</script>"


def _showing_text(fn, outputs: int, info: int, running: set):
    """`fn` (a callback) for an event whose `outputs` components include the info line at index `info`: an
    error is also written in the info line (besides Gradio's message), a stop is "Stopped." there; `running`
    holds the browser sessions whose request runs now."""

    def message_only(text):
        return tuple(text if index == info else gr.update() for index in range(outputs))

    @functools.wraps(fn)
    def run(*args, **kwargs):
        request = next((arg for arg in (*args, *kwargs.values()) if isinstance(arg, gr.Request)), None)
        session = getattr(request, "session_hash", None)
        running.add(session)
        try:
            result = fn(*args, **kwargs)
        except gr.Error as error:
            if error.message == STOPPED:
                yield message_only(STOPPED)
                return
            yield message_only(error.message)
            raise
        finally:
            running.discard(session)
        yield result

    return run


def _cleared():
    return None, ""


def _stopper(callbacks: GlideAppCallbacks, running: set):
    """Stop's callback: the running request stops at its next step, and the info line says so."""

    def stop(request: gr.Request):
        session = getattr(request, "session_hash", None)
        callbacks.cancel(request)
        return STOPPED if session in running else gr.update()

    return stop


def _checked_upload(outputs: int):
    """An upload's callback: a file that is not a usable image is refused at once (the upload is cleared, the
    message shown and written in the info line, the last of `outputs`, the first being the upload); a good one
    clears the last results (the other outputs)."""

    def check(path):
        if path is None:  # cleared
            return (gr.update(), *(None for _ in range(outputs - 2)), "")
        try:
            read_upload(path)
        except UploadError as error:
            gr.Warning(str(error))
            return (None, *(gr.update() for _ in range(outputs - 2)), str(error))
        return (gr.update(), *(None for _ in range(outputs - 2)), "")

    return check


# ---------------------------------------------------------------------------------------------------------------
# Tabs


def _generate_tab(models: AppModels, callbacks: GlideAppCallbacks):
    """Text to image; returns what the Edit tab takes from it: (images, selected index, "edit" button)."""
    with gr.Tab("Generate", id="generate", elem_id="tab-generate"):
        with gr.Row(elem_classes="glide-main"):
            with gr.Column(elem_classes="glide-inputs"):
                page_help = prompt_help(models)
                prompt = _prompt_box(page_help, "generate")
                negative = gr.Textbox(label="Negative prompt (optional)", elem_id="generate-negative")
                run, stop = _run_and_stop("Generate", "generate")
                examples = _examples(page_help, prompt, "generate", "click one to generate")
                with gr.Column(elem_classes="glide-settings"):
                    with gr.Row():
                        guidance = _guidance(3.0, "generate")
                        num_images = gr.Slider(
                            1, MAX_IMAGES, value=1, step=1, label="Images", elem_id="generate-num-images"
                        )
                    sampler, steps = _sampling_controls(models.base, "base", "generate")
                    seed, random_seed = _seed_controls("generate")
                    clip_scale = _clip_scale(models, "generate")
                    upsample, upsample_sampler, upsample_steps = _upsampling_controls(
                        models.upsampler, "upsample", "generate"
                    )
            with gr.Column(elem_classes="glide-outputs"):
                gallery = _gallery("generate-gallery")
                info = gr.Markdown(elem_id="generate-info")
                to_edit = gr.Button(
                    "Edit the selected image", visible=models.inpaint is not None, elem_id="generate-to-edit"
                )
        images, selected = gr.State([]), gr.State(None)
    inputs = [prompt, negative, guidance, steps, sampler, seed, random_seed, num_images, clip_scale]
    running = set()
    event = gr.on(
        [run.click, prompt.submit],
        _showing_text(callbacks.generate, 3, 1, running),
        [*inputs, upsample, upsample_steps, upsample_sampler],
        [gallery, info, images],
        show_progress_on=gallery,  # not over the info line
        **PIPELINE_QUEUE,
    )
    # a clicked example fills the prompt box, then generates
    example_event = examples.load_input_event.then(
        _showing_text(callbacks.generate, 3, 1, running),
        [*inputs, upsample, upsample_steps, upsample_sampler],
        [gallery, info, images],
        api_visibility="undocumented",
        show_progress_on=gallery,
        **PIPELINE_QUEUE,
    )
    stop.click(_stopper(callbacks, running), None, info, cancels=[event, example_event], queue=False)
    gallery.select(_selected_index, None, selected)
    return images, selected, to_edit


def _edit_tab(models: AppModels, callbacks: GlideAppCallbacks):
    """Inpainting with a brush (sketch-guided below strength 1), iterative; returns its image editor."""
    with gr.Tab("Edit", id="edit", elem_id="tab-edit"):
        gr.Markdown(EDIT_HELP)
        with gr.Row(elem_classes="glide-main"):
            with gr.Column(elem_classes="glide-inputs"):
                editor = gr.ImageEditor(
                    type="filepath",
                    image_mode="RGBA",
                    format="png",
                    sources=("upload", "clipboard"),
                    transforms=(),
                    layers=False,
                    brush=gr.Brush(
                        default_size=BRUSH_SIZE, colors=[MASK_COLOUR, *SKETCH_COLOURS], default_color=MASK_COLOUR
                    ),
                    label="Image: paint the region to repaint",
                    elem_id="edit-editor",
                    elem_classes="glide-image",
                )
                pass_editor_files(editor, max_pending=QUEUE_SIZE)  # a queued edit finds its images
                prompt = gr.Textbox(label="Prompt for the painted region", elem_id="edit-prompt")
                run, stop = _run_and_stop("Edit", "edit")
                with gr.Column(elem_classes="glide-settings"):
                    with gr.Row():
                        strength = _strength(1.0, "edit", "Strength (below 1: follow the painted colours)")
                        guidance = _guidance(5.0, "edit")
                    sampler, steps = _sampling_controls(models.inpaint, "base-inpaint", "edit")
                    seed, random_seed = _seed_controls("edit")
                    upsample, upsample_sampler, upsample_steps = _upsampling_controls(
                        models.inpaint_upsampler, "upsample-inpaint", "edit"
                    )
            with gr.Column(elem_classes="glide-outputs"):
                result = _image_output("Result", "edit-result")
                pass_upload_path(result, "The result")  # an input of "use the result"
                mask = _image_output("Repainted region (white)", "edit-mask", height=IMAGE_HEIGHT // 2)
                info = gr.Markdown(elem_id="edit-info")
                with gr.Row():
                    use_result = gr.Button("Use the result as the next input", elem_id="edit-use-result")
                    undo = gr.Button("Undo the last edit", elem_id="edit-undo")
        history = gr.State([])
    running = set()
    event = run.click(
        _showing_text(callbacks.edit, 3, 2, running),
        [
            editor,
            prompt,
            strength,
            guidance,
            steps,
            sampler,
            seed,
            random_seed,
            upsample,
            upsample_steps,
            upsample_sampler,
        ],
        [result, mask, info],
        show_progress_on=result,
        **PIPELINE_QUEUE,
    )
    stop.click(_stopper(callbacks, running), None, info, cancels=[event], queue=False)
    # no progress overlay on the editor: Gradio's stays up forever when an editor holding an image gets a new one;
    # the result, mask and info of the last edit are cleared with a new input
    use_result.click(
        callbacks.use_result, [result, editor, history], [editor, history, result], show_progress="hidden"
    ).success(_cleared, None, [mask, info], queue=False, show_progress="hidden")
    undo.click(callbacks.undo, [history], [editor, history, result], show_progress="hidden").success(
        _cleared, None, [mask, info], queue=False, show_progress="hidden"
    )
    editor.upload(lambda: (None, None, ""), None, [result, mask, info], queue=False, show_progress="hidden")
    return editor


def _img2img_tab(models: AppModels, callbacks: GlideAppCallbacks) -> None:
    with gr.Tab("Image to image", id="img2img", elem_id="tab-img2img"):
        with gr.Row(elem_classes="glide-main"):
            with gr.Column(elem_classes="glide-inputs"):
                image = _image_input("Starting image", "img2img-image")
                page_help = prompt_help(models)
                prompt = _prompt_box(page_help, "img2img")
                negative = gr.Textbox(label="Negative prompt (optional)", elem_id="img2img-negative")
                run, stop = _run_and_stop("Generate", "img2img")
                _examples(page_help, prompt, "img2img", "click one to fill the prompt")
                with gr.Column(elem_classes="glide-settings"):
                    with gr.Row():
                        strength = _strength(0.8, "img2img", "Strength (1 = ignore the image)")
                        guidance = _guidance(3.0, "img2img")
                    sampler, steps = _sampling_controls(models.base, "base", "img2img")
                    num_images = gr.Slider(
                        1, MAX_IMAGES, value=1, step=1, label="Images", elem_id="img2img-num-images"
                    )
                    seed, random_seed = _seed_controls("img2img")
                    clip_scale = _clip_scale(models, "img2img")
            with gr.Column(elem_classes="glide-outputs"):
                gallery = _gallery("img2img-gallery")
                info = gr.Markdown(elem_id="img2img-info")
    running = set()
    event = gr.on(
        [run.click, prompt.submit],
        _showing_text(callbacks.img2img, 2, 1, running),
        [image, prompt, negative, strength, guidance, steps, sampler, seed, random_seed, num_images, clip_scale],
        [gallery, info],
        show_progress_on=gallery,
        **PIPELINE_QUEUE,
    )
    stop.click(_stopper(callbacks, running), None, info, cancels=[event], queue=False)
    image.upload(_checked_upload(3), image, [image, gallery, info], **UPLOAD_CHECK)


def _upscale_tab(models: AppModels, callbacks: GlideAppCallbacks) -> None:
    size = models.upsampler.unet.config.sample_size
    with gr.Tab("Upscale", id="upscale", elem_id="tab-upscale"):
        gr.Markdown(
            f"GLIDE's text-conditional upsampler: the image is resized to {models.base_size}x{models.base_size} and "
            f"upsampled to {size}x{size}. Describe the image in the prompt."
        )
        with gr.Row(elem_classes="glide-main"):
            with gr.Column(elem_classes="glide-inputs"):
                image = _image_input("Image", "upscale-image")
                prompt = gr.Textbox(label="Prompt", elem_id="upscale-prompt")
                run, stop = _run_and_stop("Upscale", "upscale")
                with gr.Column(elem_classes="glide-settings"):
                    sampler, steps = _sampling_controls(models.upsampler, "upsample", "upscale")
                    seed, random_seed = _seed_controls("upscale")
            with gr.Column(elem_classes="glide-outputs"):
                result = _image_output("Upscaled", "upscale-result")
                info = gr.Markdown(elem_id="upscale-info")
    running = set()
    event = run.click(
        _showing_text(callbacks.upscale, 2, 1, running),
        [image, prompt, steps, sampler, seed, random_seed],
        [result, info],
        show_progress_on=result,
        **PIPELINE_QUEUE,
    )
    stop.click(_stopper(callbacks, running), None, info, cancels=[event], queue=False)
    image.upload(_checked_upload(3), image, [image, result, info], **UPLOAD_CHECK)


def _keep_prompts(demo: gr.Blocks) -> None:
    """Each tab's prompt kept in the browser (its local storage): a reload of the page keeps what was written."""
    for block in list(demo.blocks.values()):
        if isinstance(block, gr.Textbox) and (block.elem_id or "").endswith("-prompt"):
            saved = gr.BrowserState("", storage_key=f"glide-{block.elem_id}")
            block.input(_same, block, saved, queue=False, show_progress="hidden", api_visibility="private")
            demo.load(_same, saved, block, queue=False, show_progress="hidden", api_visibility="private")


def _same(value):
    return value


def build_app(models: AppModels | None = None) -> gr.Blocks:
    """
    The GLIDE web app as a `gradio.Blocks`, with its request queue set up (one pipeline call at a time).

    `models` defaults to the embedded shapes models (`load_app_models()`); a tab whose pipeline is not loaded is
    left out. Launch it with `diffusers_glide.app.launch_options()` (local only, upload limit, the page's CSS),
    e.g. in a Space:

        demo = build_app(load_app_models(model="my-user/glide-base", inpaint="my-user/glide-base-inpaint"))
        demo.launch(**launch_options(host="0.0.0.0"))
    """
    models = models if models is not None else load_app_models()
    callbacks = GlideAppCallbacks(models)
    # uploads and results older than an hour are deleted from Gradio's cache every hour
    with gr.Blocks(title="GLIDE", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(_describe(models))
        gr.Markdown(models_line(models), elem_id="model-label")
        with gr.Tabs() as tabs:
            images, selected, to_edit = _generate_tab(models, callbacks)
            if models.inpaint is not None:
                editor = _edit_tab(models, callbacks)
                to_edit.click(callbacks.send_to_editor, [images, selected], editor, show_progress="hidden").then(
                    lambda: gr.Tabs(selected="edit"), None, tabs
                )
            _img2img_tab(models, callbacks)
            if models.upsampler is not None:
                _upscale_tab(models, callbacks)
        demo.unload(callbacks.sessions.close)  # a reloaded or closed page stops its request at the next step
        _keep_prompts(demo)
    for block in demo.blocks.values():
        if isinstance(block, gr.Slider):
            block.buttons = []  # no reset buttons: five of them on a tab, all named "Reset to default value"
    pass_values_as_sent(demo)  # checked by the callbacks, with the app's messages
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    demo.glide_callbacks = callbacks  # for tests and embedding code: the functions behind the buttons
    return demo
