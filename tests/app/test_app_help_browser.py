"""The page's prompt help in a real browser (headless Chromium, the helpers of test_app_browser.py): Enter in the
prompt box generates, unknown words are named on the page, and a clicked example fills the prompt and generates."""

import pytest
import torch
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from diffusers_glide import GlidePipeline
from diffusers_glide.app.help import SHAPES_PLACEHOLDER, shapes_examples
from diffusers_glide.shapes.dataset import COLORS

from .test_app_browser import PROMPT, TIMEOUT, _assert_same, _reference

# one app server and one Chromium, shared with test_app_browser.py under pytest-xdist
pytestmark = pytest.mark.xdist_group("app_server")


@pytest.fixture()
def page(app_server, chromium):
    from .test_app_browser import Page

    url, _, _ = app_server
    return Page(chromium, url).open()


def _prompt_box(page):
    return page.find("#generate-prompt textarea") or page.find("#generate-prompt input")


def _expected(prompt: str):
    """The image of the page's defaults (seed 0, 15 DPM-Solver++ steps, guidance 3) for `prompt`."""
    return _reference(GlidePipeline, "base")(
        prompt, num_inference_steps=15, guidance_scale=3.0, generator=torch.Generator().manual_seed(0)
    ).images[0]


def test_enter_in_the_prompt_box_generates(page):
    box = _prompt_box(page)
    assert box.get_attribute("placeholder") == f"e.g. {SHAPES_PLACEHOLDER}"
    assert "Press Enter to generate." in page.text("tab-generate")
    box.clear()
    box.send_keys(PROMPT + Keys.ENTER)
    _assert_same(page.wait_image("generate-gallery"), _expected(PROMPT))
    assert box.get_attribute("value") == PROMPT  # no newline added
    assert page.text("generate-info").startswith("Seed 0 · DPM-Solver++, 15 steps · 32x32 · ")
    assert "Unknown words" not in page.text("generate-info")


def test_unknown_words_are_named_on_the_page(page):
    box = _prompt_box(page)
    box.clear()
    box.send_keys("a red cat on a blue photo" + Keys.ENTER)
    page.wait_image("generate-gallery")
    page.wait_for(
        lambda: (
            "Unknown words ignored by this model: cat, photo. It knows only these 20 words"
            in page.text("generate-info")
        ),
        TIMEOUT,
    )


def test_a_clicked_example_fills_the_prompt_and_generates(page):
    vocabulary = page.text("generate-vocabulary")
    assert "Colours: " + ", ".join(COLORS) in vocabulary and "Positions: in the middle, on the left" in vocabulary
    assert page.text("model-label") == "Model: the embedded shapes model"
    example = shapes_examples()[1]
    buttons = page.driver.find_elements(By.CSS_SELECTOR, "#generate-examples button")
    shown = [button.text.strip() for button in buttons]
    assert set(shapes_examples()) <= set(shown), shown
    next(button for button in buttons if button.text.strip() == example).click()
    page.wait_for(lambda: _prompt_box(page).get_attribute("value") == example)
    _assert_same(page.wait_image("generate-gallery"), _expected(example))
    assert page.text("generate-info").startswith("Seed 0 · DPM-Solver++, 15 steps · 32x32 · ")
