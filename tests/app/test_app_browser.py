"""The web app in a real browser: headless Chromium drives the page served on a free local port.

Set GLIDE_APP_SCREENSHOTS to a folder to keep a screenshot of each tab (docs/app/*.png come from here).
"""

import io
import os
import time
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diffusers_glide import GlideImg2ImgPipeline, GlidePipeline, GlideUpsamplePipeline, embedded_model_path

# Under pytest-xdist the app server tests share one worker, so one app server (and one Chromium) is started.
pytestmark = pytest.mark.xdist_group("app_server")

PROMPT = "a red circle on a blue background"
SCREENSHOTS_ENV_VAR = "GLIDE_APP_SCREENSHOTS"
TIMEOUT = 120  # seconds for one pipeline call on a busy 2-core machine


class Page:
    """The app's page in the browser, addressed by the elem_ids of its controls."""

    def __init__(self, driver, url: str):
        self.driver, self.url = driver, url

    def open(self) -> "Page":
        self.driver.set_window_size(1280, 1000)
        self.driver.get(self.url)
        # a fresh page for every test: the page keeps its prompts in the browser's storage across reloads
        self.driver.execute_script("window.localStorage.clear()")
        self.driver.get(self.url)
        self.wait_for(lambda: self.find("#generate-prompt textarea"))
        return self

    def wait_for(self, condition, timeout: float = 30):
        # the page re-renders its elements as values arrive: an element found a moment ago may be gone
        wait = WebDriverWait(self.driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
        return wait.until(lambda _: condition())

    def find(self, selector: str):
        found = [element for element in self.driver.find_elements(By.CSS_SELECTOR, selector) if element.is_displayed()]
        return found[0] if found else None

    def tab(self, name: str) -> None:
        buttons = [button for button in self.driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")]
        next(button for button in buttons if button.text == name).click()

    def type(self, elem_id: str, text: str) -> None:
        box = self.find(f"#{elem_id} textarea") or self.find(f"#{elem_id} input")
        box.clear()
        box.send_keys(text)

    def set_number(self, elem_id: str, value) -> None:
        box = self.find(f"#{elem_id} input[type=number]")
        box.clear()
        box.send_keys(str(value))

    def click(self, elem_id: str) -> None:
        self.find(f"#{elem_id}").click()

    def upload(self, elem_id: str, path) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[data-testid=file-upload]").send_keys(str(path))

    def image_url(self, elem_id: str) -> str | None:
        """The URL of the image that `elem_id` shows, None while it shows none."""
        for _ in range(5):
            try:
                image = self.find(f"#{elem_id} img")
                source = image.get_attribute("src") if image is not None else None
                return source if source and "/gradio_api/file=" in source else None
            except StaleElementReferenceException:
                time.sleep(0.2)
        raise AssertionError(f"#{elem_id} keeps re-rendering")

    def wait_image(self, elem_id: str, previous: str | None = None) -> PIL.Image.Image:
        """The next image that `elem_id` shows (one other than `previous`), as the server sent it."""
        url = self.wait_for(lambda: (url := self.image_url(elem_id)) and url != previous and url, TIMEOUT)
        with urllib.request.urlopen(url) as response:
            return PIL.Image.open(io.BytesIO(response.read())).convert("RGB")

    def messages(self) -> list[str]:
        return [" ".join(toast.text.split()) for toast in self.driver.find_elements(By.CSS_SELECTOR, ".toast-body")]

    def wait_message(self, text: str) -> None:
        self.wait_for(lambda: any(text in message for message in self.messages()), TIMEOUT)

    def text(self, elem_id: str) -> str:
        return self.driver.find_element(By.CSS_SELECTOR, f"#{elem_id}").text

    def open_tab(self, name: str, prefix: str) -> None:
        """Tab `name`, once its prompt box shows, plus a second for its upload widget to initialise."""
        self.tab(name)
        self.wait_for(lambda: self.find(f"#{prefix}-prompt textarea"))
        time.sleep(1)

    def open_editor(self) -> None:
        """The Edit tab with its canvas ready: a file uploaded before the editor initialises is dropped."""
        self.tab("Edit")
        self.wait_for(lambda: self.find("#edit-editor canvas"))
        time.sleep(1)

    def upload_to_editor(self, path) -> None:
        """Upload into the image editor and wait until it holds the image (its Undo button comes on)."""
        self.upload("edit-editor", path)
        self.wait_for(lambda: self.find("#edit-editor button[aria-label=Undo]").get_attribute("disabled") is None)
        time.sleep(1)

    def paint_stroke(self, dy: int) -> None:
        """A horizontal brush stroke across the middle of the editor's image, `dy` pixels below its centre."""
        canvas = self.find("#edit-editor canvas")
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        time.sleep(0.5)
        stroke = ActionChains(self.driver, duration=50).move_to_element_with_offset(canvas, -80, dy).click_and_hold()
        # the brush joins the pointer positions with segments: two moves paint the band that eight did (the same
        # 132 cells of the 32x32 mask), and each move costs ~0.3 s of software rendering
        for step in range(1, 3):
            stroke.move_to_element_with_offset(canvas, -80 + 80 * step, dy)
        stroke.release().perform()
        time.sleep(1)  # the editor sends its layers to the server's view of the page after the stroke

    def screenshot(self, name: str) -> None:
        folder = os.environ.get(SCREENSHOTS_ENV_VAR)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            self.driver.execute_script("window.scrollTo(0, 0)")
            self.driver.save_screenshot(str(Path(folder) / f"{name}.png"))


@pytest.fixture()
def page(app_server, chromium):
    url, _, _ = app_server
    yield Page(chromium, url).open()
    chromium.execute_script("window.localStorage.clear()")  # the page keeps its prompts there across reloads


def _scene(path, size: int = 32) -> Path:
    pixels = np.zeros((size, size, 3), dtype=np.uint8)
    pixels[...] = (30, 60, 200)
    pixels[size // 8 : size // 2, size // 8 : size // 2] = (220, 30, 30)
    PIL.Image.fromarray(pixels).save(path)
    return Path(path)


def _assert_same(actual: PIL.Image.Image, expected: PIL.Image.Image) -> None:
    difference = np.abs(np.asarray(actual, dtype=np.int16) - np.asarray(expected.convert("RGB"), dtype=np.int16))
    assert actual.size == expected.size and difference.max() == 0, f"max abs difference {difference.max()}"


def _reference(pipeline_class, kind: str):
    """A separately loaded pipeline sampling with diffusers' DPM-Solver++ built from its scheduler configuration
    (the app's default sampler on every tab but Edit, as on the command line)."""
    pipe = pipeline_class.from_pretrained(embedded_model_path(kind))
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_generate_shows_the_pipelines_image_in_the_gallery(page):
    page.type("generate-prompt", PROMPT)
    page.click("generate-button")
    image = page.wait_image("generate-gallery")
    expected = _reference(GlidePipeline, "base")(
        PROMPT, num_inference_steps=15, guidance_scale=3.0, generator=torch.Generator().manual_seed(0)
    ).images[0]
    _assert_same(image, expected)  # the page's defaults: seed 0, 15 DPM-Solver++ steps, guidance 3
    assert page.text("generate-info").startswith("Seed 0 · DPM-Solver++, 15 steps · 32x32 · ")
    page.screenshot("generate")

    # upsampling on: its defaults, 5 DPM-Solver++ steps, continue the base sampling's generator
    first_url = page.image_url("generate-gallery")
    page.find("#generate-upsample input").click()
    page.click("generate-button")
    upsampled = page.wait_image("generate-gallery", previous=first_url)
    generator = torch.Generator().manual_seed(0)
    low = _reference(GlidePipeline, "base")(
        PROMPT, num_inference_steps=15, guidance_scale=3.0, generator=generator
    ).images
    expected = _reference(GlideUpsamplePipeline, "upsample")(
        PROMPT, image=low, num_inference_steps=5, generator=generator
    ).images[0]
    _assert_same(upsampled, expected)
    assert "upsampled with DPM-Solver++, 5 steps · 128x128" in page.text("generate-info")


def test_edit_repaints_only_the_painted_stroke_and_continues_from_its_result(page, tmp_path):
    scene = _scene(tmp_path / "scene.png")
    page.open_editor()
    page.upload_to_editor(scene)
    page.paint_stroke(dy=60)
    page.type("edit-prompt", "a green square")
    page.click("edit-button")
    result = page.wait_image("edit-result")
    mask = np.asarray(page.wait_image("edit-mask").convert("L")) > 0
    assert result.size == (32, 32)
    assert 0 < mask.sum() < mask.size / 2, "the stroke should mark a band of the image"
    keep = ~mask
    assert np.array_equal(np.asarray(result)[keep], np.asarray(PIL.Image.open(scene))[keep])
    page.screenshot("edit")

    # iterative editing: the result becomes the input; a second stroke keeps the first result elsewhere
    first_url, first_mask_url = page.image_url("edit-result"), page.image_url("edit-mask")
    page.click("edit-use-result")
    page.wait_for(lambda: page.image_url("edit-result") is None)
    time.sleep(2)
    page.paint_stroke(dy=-60)
    page.click("edit-button")
    second = page.wait_image("edit-result", previous=first_url)
    second_mask = np.asarray(page.wait_image("edit-mask", previous=first_mask_url).convert("L")) > 0
    assert not np.array_equal(second_mask, mask)
    keep = ~second_mask
    assert np.array_equal(np.asarray(second)[keep], np.asarray(result)[keep])
    page.click("edit-undo")
    page.wait_for(lambda: page.image_url("edit-result") is None)
    assert not any("Error" in message for message in page.messages())


def test_image_to_image_and_upscale_tabs_run_their_pipelines(page, tmp_path):
    scene = _scene(tmp_path / "scene.png")
    page.open_tab("Image to image", "img2img")
    page.upload("img2img-image", scene)
    page.type("img2img-prompt", "a green square on a white background")
    page.click("img2img-button")
    image = page.wait_image("img2img-gallery")
    expected = _reference(GlideImg2ImgPipeline, "base")(
        "a green square on a white background",
        image=PIL.Image.open(scene),
        strength=0.8,
        num_inference_steps=15,  # the page's defaults: 15 DPM-Solver++ steps, guidance 3, seed 0
        guidance_scale=3.0,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    _assert_same(image, expected)
    assert page.text("img2img-info").startswith("Seed 0 · strength 0.8 · DPM-Solver++, 15 steps · ")
    page.screenshot("img2img")

    page.open_tab("Upscale", "upscale")
    page.upload("upscale-image", scene)
    page.type("upscale-prompt", "a red square on a blue background")
    page.click("upscale-button")
    upscaled = page.wait_image("upscale-result")
    upsampler = _reference(GlideUpsamplePipeline, "upsample")
    expected = upsampler(
        "a red square on a blue background",
        image=PIL.Image.open(scene),
        num_inference_steps=5,  # the page's defaults: 5 DPM-Solver++ steps, seed 0
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    _assert_same(upscaled, expected)
    assert page.text("upscale-info").startswith("Seed 0 · DPM-Solver++, 5 steps · 32x32 -> 128x128 · ")
    page.screenshot("upscale")


def test_bad_input_shows_a_message_and_the_server_keeps_serving(page, tmp_path):
    page.click("generate-button")  # no prompt
    page.wait_message("Write a prompt first.")

    page.open_editor()
    page.upload_to_editor(_scene(tmp_path / "scene.png"))
    page.type("edit-prompt", "a green square")
    page.click("edit-button")  # nothing painted
    page.wait_message("Paint over the region to repaint with the brush first")

    page.open_tab("Image to image", "img2img")
    (tmp_path / "notes.png").write_text("not an image")
    page.upload("img2img-image", tmp_path / "notes.png")
    page.type("img2img-prompt", "a green square")
    page.click("img2img-button")
    page.wait_message("The image is not a PNG, JPEG, WebP, BMP, GIF or TIFF image.")

    (tmp_path / "huge.png").write_bytes(os.urandom(11_000_000))  # over the 10 MB upload limit
    page.open_tab("Upscale", "upscale")
    page.upload("upscale-image", tmp_path / "huge.png")
    page.wait_for(lambda: page.find("#glide-upload-error"))
    assert (
        page.text("glide-upload-error") == "huge.png is 11.0 MB: uploads are limited to 10 MB. Choose a smaller image."
    )

    page.tab("Generate")
    page.type("generate-prompt", PROMPT)
    page.set_number("generate-steps", 5)
    page.click("generate-button")
    assert page.wait_image("generate-gallery").size == (32, 32)


def test_stop_ends_a_long_request_at_its_next_step(page, app_server):
    _, models, callbacks = app_server
    steps = []
    forward = models.base.unet.forward

    def counted_forward(*args, **kwargs):
        steps.append(1)
        return forward(*args, **kwargs)

    models.base.unet.forward = counted_forward
    try:
        page.type("generate-prompt", PROMPT)
        page.set_number("generate-steps", 250)
        page.click("generate-button")
        page.wait_for(lambda: "/250" in page.driver.page_source, TIMEOUT)  # the progress bar follows the steps
        page.click("generate-stop")
        page.wait_for(lambda: not callbacks._lock.locked(), TIMEOUT)  # the pipelines are free again
        stopped_after = len(steps)
    finally:
        del models.base.unet.forward
    assert 0 < stopped_after < 250
    time.sleep(1)
    assert page.image_url("generate-gallery") is None
    page.set_number("generate-steps", 5)
    page.click("generate-button")
    assert page.wait_image("generate-gallery").size == (32, 32)
