"""The functions the web app's buttons call: check the inputs, run one pipeline call at a time, report errors.

Every callback takes plain values (what Gradio passes: strings, numbers, file paths, the image editor's dict) and
returns what the page shows, so it can be called and tested without a browser. Bad input raises `gradio.Error`
with a message the page shows; the server keeps serving.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time

import gradio as gr
import PIL.Image
import torch

from .. import samplers
from ..cascade import Cascade, make_generator
from ..messages import cut_short, one_line
from ..pipelines.memory import BatchTooLargeError
from .help import unknown_words_note
from .models import SAMPLERS, AppModels, sampler_of_label, steps_range
from .sessions import SessionWatch
from .uploads import EditorInput, UploadError, read_upload, resize_square, upscale_mask

MAX_IMAGES = 8  # per request: one request holds the pipelines until it ends
MAX_GUIDANCE = 30.0
MAX_SEED = 2**32 - 1
MAX_HISTORY = 20  # images kept for "Undo" per browser session
SHOWN_CHARACTERS = 32  # of a value that a message quotes


class Cancelled(Exception):
    """Raised inside the denoising loop when the user pressed Stop or left the page."""


def shown(value, repr_: bool = False) -> str:
    """`value` for a message, cut short: the API sends anything."""
    text = repr(value) if repr_ else str(value)
    return cut_short(text, SHOWN_CHARACTERS, f"{len(text)} characters")


def _number(value, name: str, low: float, high: float, integer: bool = False):
    """`value` checked against the control's limits (the page enforces them too, the API does not: the controls
    hand over what was sent, see `raw_inputs.py`)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise gr.Error(f"{name} must be a number, got {shown(value, repr_=True)}.") from None
    if not math.isfinite(number) or not low <= number <= high:
        raise gr.Error(f"{name} must be between {low:g} and {high:g}, got {shown(value)}.")
    if integer:
        if number != int(number):
            raise gr.Error(f"{name} must be a whole number, got {shown(value)}.")
        return int(number)
    return number


def _flag(value, name: str) -> bool:
    """A checkbox's value: true or false (the API could send any JSON value, and "false" is a true string)."""
    if not isinstance(value, bool):
        raise gr.Error(f"{name} must be true or false, got {shown(value, repr_=True)}.")
    return value


def _prompt(prompt) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise gr.Error("Write a prompt first.")
    return prompt


def _sampler(sampler) -> str:
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise gr.Error(f"Unknown sampler {shown(sampler, repr_=True)}; choose one of: {', '.join(SAMPLERS)}.")
    return sampler


def _number_of_images(value) -> int:
    return _number(value, "Number of images", 1, MAX_IMAGES, integer=True)


class GlideAppCallbacks:
    """The app's callbacks over one set of loaded pipelines (`AppModels`), shared by every user of the server."""

    def __init__(self, models: AppModels):
        self.models = models
        self._lock = threading.Lock()  # one pipeline call at a time: they share modules and swap schedulers
        self._stop_events: dict[str | None, threading.Event] = {}
        self.sessions = SessionWatch()  # its `close` is the page's unload listener

    # ---------------------------------------------------------------------------------------------------------
    # Running one request

    @contextlib.contextmanager
    def _job(self, request: gr.Request | None):
        """Hold the pipelines for one request; yields the step callback that stops the loop on `cancel` or when the
        request's client has left (`sessions.py`). Input errors from the pipelines become messages in the page."""
        session = getattr(request, "session_hash", None)
        stop = threading.Event()
        client_gone = self.sessions.watch(request)

        def stop_check(pipe, step, timestep, callback_kwargs):
            if stop.is_set() or client_gone():
                raise Cancelled
            return callback_kwargs

        with self._lock:
            self._stop_events[session] = stop
            try:
                if client_gone():  # left while the request waited
                    raise Cancelled
                yield stop_check
            except Cancelled:
                raise gr.Error("Stopped.") from None
            except BatchTooLargeError as error:
                raise gr.Error(f"Too many images for the memory of this server: at most {error.max_images}.") from None
            except (ValueError, TypeError, FloatingPointError) as error:
                raise gr.Error(one_line(error)) from error
            finally:
                self._stop_events.pop(session, None)

    def cancel(self, request: gr.Request | None = None) -> None:
        """Stop the running request of this browser session at its next denoising step."""
        stop = self._stop_events.get(getattr(request, "session_hash", None))
        if stop is not None:
            stop.set()

    def _generator(self, seed, random_seed) -> tuple[torch.Generator, int]:
        if _flag(random_seed, "Random seed"):
            seed = random.randrange(MAX_SEED + 1)
        else:
            seed = _number(seed, "Seed", 0, MAX_SEED, integer=True)
        return make_generator(seed, self.models.base.device), seed

    def _steps(self, pipe, steps, sampler: str, name: str = "Steps") -> int:
        low, high = steps_range(pipe, sampler)
        return _number(steps, f"{name} of {sampler}", low, high, integer=True)

    def _read_at_base_size(self, value) -> tuple[PIL.Image.Image, str]:
        """An upload at the base model's square size, and a note for the page when that stretched it."""
        image = _read(value)
        return resize_square(image, self.models.base_size), self._stretch_note(image)

    def _stretch_note(self, image: PIL.Image.Image) -> str:
        if image.width == image.height:
            return ""
        size = self.models.base_size
        return f" · stretched from {image.width}x{image.height} to {size}x{size} (crop it square to keep its shape)"

    def _clip_guidance_scale(self, value) -> float:
        scale = _number(value or 0.0, "CLIP guidance scale", 0, MAX_GUIDANCE)
        if scale > 0 and not self.models.has_clip:
            raise gr.Error("This server has no CLIP model loaded: set the CLIP guidance scale to 0.")
        return scale

    @staticmethod
    def _sample(pipe, sampler: str, stop_check, prompt, **kwargs):
        """`pipe(prompt, **kwargs)` with the scheduler of dropdown `sampler`, stopped by `stop_check` (inside
        `_job`)."""
        samplers.use_sampler(pipe, sampler_of_label(sampler))
        return pipe(prompt, callback_on_step_end=stop_check, **kwargs)

    def _upsampling(self, upsampler, what: str, enabled, steps, sampler):
        """(the upsampler, its steps, its sampler) checked when upsampling is on, else (None, None, None)."""
        if not _flag(enabled, "Upsample"):
            return None, None, None
        upsampler = self._require(upsampler, what)
        sampler = _sampler(sampler)
        return upsampler, self._steps(upsampler, steps, sampler, "Upsampling steps"), sampler

    def _require(self, pipe, what: str):
        if pipe is None:
            raise gr.Error(f"This server has no {what} loaded.")
        return pipe

    # ---------------------------------------------------------------------------------------------------------
    # Tabs

    def generate(
        self,
        prompt,
        negative_prompt,
        guidance_scale,
        steps,
        sampler,
        seed,
        random_seed,
        num_images,
        clip_guidance_scale=0.0,
        upsample=False,
        upsample_steps=None,
        upsample_sampler=None,
        request: gr.Request = None,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008 - Gradio's way to ask for a progress bar
    ):
        """Text to image, optionally upsampled: (gallery items, info, the images for "send to Edit")."""
        base = self.models.base
        prompt = _prompt(prompt)
        guidance_scale = _number(guidance_scale, "Guidance scale", 0, MAX_GUIDANCE)
        sampler = _sampler(sampler)
        steps = self._steps(base, steps, sampler)
        num_images = _number_of_images(num_images)
        clip_guidance_scale = self._clip_guidance_scale(clip_guidance_scale)
        upsampler, upsample_steps, upsample_sampler = self._upsampling(
            self.models.upsampler, "upsampler", upsample, upsample_steps, upsample_sampler
        )
        generator, seed = self._generator(seed, random_seed)
        started = time.perf_counter()
        with self._job(request) as stop_check:
            text_to_image = Cascade(
                base=base,
                upsampler=upsampler,
                sampler=sampler_of_label(sampler),
                steps=steps,
                guidance_scale=guidance_scale,
                clip_guidance_scale=clip_guidance_scale,
                upsample_sampler=sampler_of_label(upsample_sampler) if upsampler is not None else None,
                upsample_steps=upsample_steps,
            )
            images = text_to_image(
                prompt,
                generator=generator,
                num_images_per_prompt=num_images,
                negative_prompt=negative_prompt or None,
                callback_on_step_end=stop_check,
            ).images
        elapsed = time.perf_counter() - started
        info = f"Seed {seed} · {sampler}, {steps} steps"
        info += _upsampling_note(upsampler, upsample_sampler, upsample_steps)
        info += f" · {images[0].width}x{images[0].height} · {elapsed:.1f} s"
        info += unknown_words_note(base.tokenizer, prompt, negative_prompt)
        return _gallery_items(images, seed, sampler, steps, elapsed), info, images

    def img2img(
        self,
        image,
        prompt,
        negative_prompt,
        strength,
        guidance_scale,
        steps,
        sampler,
        seed,
        random_seed,
        num_images,
        clip_guidance_scale=0.0,
        request: gr.Request = None,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        """Image to image (SDEdit): (gallery items, info)."""
        pipe = self.models.img2img
        image, note = self._read_at_base_size(image)
        prompt = _prompt(prompt)
        strength = _number(strength, "Strength", 0, 1)
        guidance_scale = _number(guidance_scale, "Guidance scale", 0, MAX_GUIDANCE)
        sampler = _sampler(sampler)
        steps = self._steps(pipe, steps, sampler)
        num_images = _number_of_images(num_images)
        clip_guidance_scale = self._clip_guidance_scale(clip_guidance_scale)
        generator, seed = self._generator(seed, random_seed)
        started = time.perf_counter()
        with self._job(request) as stop_check:
            images = self._sample(
                pipe,
                sampler,
                stop_check,
                prompt,
                image=image,
                strength=strength,
                negative_prompt=negative_prompt or None,
                num_inference_steps=steps,
                guidance_scale=guidance_scale,
                num_images_per_prompt=num_images,
                generator=generator,
                clip_guidance_scale=clip_guidance_scale,
            ).images
        elapsed = time.perf_counter() - started
        info = f"Seed {seed} · strength {strength:g} · {sampler}, {steps} steps · {elapsed:.1f} s"
        info += note + unknown_words_note(pipe.tokenizer, prompt, negative_prompt)
        return _gallery_items(images, seed, sampler, steps, elapsed), info

    def edit(
        self,
        editor_value,
        prompt,
        strength,
        guidance_scale,
        steps,
        sampler,
        seed,
        random_seed,
        upsample=False,
        upsample_steps=None,
        upsample_sampler=None,
        request: gr.Request = None,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        """Inpaint where the user painted (sketch-guided below strength 1): (result, the mask used, info)."""
        pipe = self._require(self.models.inpaint, "inpainting model")
        prompt = _prompt(prompt)
        try:
            source = EditorInput(editor_value)
        except UploadError as error:
            raise gr.Error(str(error)) from None
        strength = _number(strength, "Strength", 0, 1)
        guidance_scale = _number(guidance_scale, "Guidance scale", 0, MAX_GUIDANCE)
        sampler = _sampler(sampler)
        steps = self._steps(pipe, steps, sampler)
        upsampler, upsample_steps, upsample_sampler = self._upsampling(
            self.models.inpaint_upsampler, "inpainting upsampler", upsample, upsample_steps, upsample_sampler
        )
        image, mask = source.model_inputs(self.models.base_size, sketch=strength < 1)
        generator, seed = self._generator(seed, random_seed)
        started = time.perf_counter()
        with self._job(request) as stop_check:
            result = self._sample(
                pipe,
                sampler,
                stop_check,
                prompt,
                image=image,
                mask_image=mask,
                strength=strength,
                num_inference_steps=steps,
                guidance_scale=guidance_scale,
                generator=generator,
            ).images[0]
            if upsampler is not None:
                size = upsampler.unet.config.sample_size
                mask = upscale_mask(mask, size)
                result = self._sample(
                    upsampler,
                    upsample_sampler,
                    stop_check,
                    prompt,
                    image=result,
                    inpaint_image=resize_square(source.background, size),
                    mask_image=mask,
                    num_inference_steps=upsample_steps,
                    generator=generator,
                ).images[0]
        info = f"Seed {seed} · strength {strength:g} · {sampler}, {steps} steps"
        info += _upsampling_note(upsampler, upsample_sampler, upsample_steps)
        info += f" · {result.width}x{result.height} · {time.perf_counter() - started:.1f} s"
        info += self._stretch_note(source.background) + unknown_words_note(pipe.tokenizer, prompt)
        return result, mask, info

    def upscale(
        self,
        image,
        prompt,
        steps,
        sampler,
        seed,
        random_seed,
        request: gr.Request = None,
        progress=gr.Progress(track_tqdm=True),  # noqa: B008
    ):
        """GLIDE's text-conditional 4x upsampling of an upload resized to the base size: (result, info)."""
        pipe = self._require(self.models.upsampler, "upsampler")
        low, note = self._read_at_base_size(image)
        prompt = prompt if isinstance(prompt, str) else ""
        sampler = _sampler(sampler)
        steps = self._steps(pipe, steps, sampler)
        generator, seed = self._generator(seed, random_seed)
        started = time.perf_counter()
        with self._job(request) as stop_check:
            result = self._sample(
                pipe,
                sampler,
                stop_check,
                prompt,
                image=low,
                num_inference_steps=steps,
                generator=generator,
            ).images[0]
        size = self.models.base_size
        info = (
            f"Seed {seed} · {sampler}, {steps} steps · {size}x{size} -> {result.width}x{result.height} · "
            f"{time.perf_counter() - started:.1f} s{note}"
        ) + unknown_words_note(pipe.tokenizer, prompt)
        return result, info

    # ---------------------------------------------------------------------------------------------------------
    # Iterative editing: the result becomes the next input, and the last step can be undone

    @staticmethod
    def use_result(result, editor_value, history):
        """The edit's result as the editor's new image; the image it replaces goes onto the undo history."""
        if result is None:
            raise gr.Error("Run an edit first: there is no result to continue from.")
        history = list(history or [])
        if isinstance(editor_value, dict) and editor_value.get("background") is not None:
            history = [*history, _read(editor_value["background"])][-MAX_HISTORY:]
        return _editor_value(_as_image(result)), history, None

    @staticmethod
    def undo(history):
        """Back to the image before the last "use result": (editor image, history, cleared result)."""
        history = list(history or [])
        if not history:
            raise gr.Error("Nothing to undo.")
        previous = history.pop()
        return _editor_value(previous), history, None

    @staticmethod
    def send_to_editor(images, selected):
        """The gallery image the user selected (the first one if none) as the editor's image."""
        if not images:
            raise gr.Error("Generate an image first.")
        index = selected if isinstance(selected, int) and 0 <= selected < len(images) else 0
        return _editor_value(_as_image(images[index]))


def _gallery_items(images, seed: int, sampler: str, steps: int, elapsed: float) -> list[tuple]:
    """The gallery's (image, caption) items; the caption, shown under each image, is also the image's name in the
    page (its alt text), so that each is told apart."""
    caption = f"seed {seed} · {sampler} · {steps} steps · {elapsed:.1f} s"
    if len(images) == 1:
        return [(images[0], caption)]
    return [(image, f"image {index + 1} of {len(images)} · {caption}") for index, image in enumerate(images)]


def _upsampling_note(upsampler, sampler: str | None, steps: int | None) -> str:
    return "" if upsampler is None else f" · upsampled with {sampler}, {steps} steps"


def _editor_value(image: PIL.Image.Image) -> dict:
    """The image editor's value for a new image with nothing painted on it."""
    return {"background": image, "layers": [], "composite": image}


def _as_image(value) -> PIL.Image.Image:
    """A PIL image from what Gradio passes for an image (a PIL image, a path, or a gallery (path, caption))."""
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    return _read(value)


def _read(value) -> PIL.Image.Image:
    """An upload (a path, the editor's bytes, a PIL image) read through the image gate; a refusal is a message."""
    try:
        return read_upload(value)
    except UploadError as error:
        raise gr.Error(str(error)) from None
