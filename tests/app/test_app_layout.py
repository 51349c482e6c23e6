"""The web app's page in headless Chromium: results shown whole with their captions, states and errors as text in
the info line, a name for every image and button, the editor's palette, and the page on a narrow screen."""

import time

import pytest

from .test_app_browser import PROMPT, TIMEOUT, Page, _scene

pytestmark = pytest.mark.xdist_group("app_server")


@pytest.fixture()
def page(app_server, chromium):
    url, _, _ = app_server
    yield Page(chromium, url).open()
    chromium.execute_script("window.localStorage.clear()")  # the page keeps its prompts there across reloads


# each visible image and button of an element: its accessible name as a screen reader reads it from the DOM
NAMES_JS = """
const root = arguments[0];
const shown = (element) => element.getClientRects().length > 0 && getComputedStyle(element).visibility !== "hidden";
const name = (element) => (element.getAttribute("aria-label") || element.getAttribute("alt") ||
    element.textContent || element.getAttribute("title") || "").trim().replace(/\\s+/g, " ");
return [...root.querySelectorAll("img, button, [role=button]")].filter(shown)
    .map((element) => [element.tagName.toLowerCase(), name(element), element.outerHTML.slice(0, 160)]);
"""

# how each image of the element is drawn: whole when its box is not clipped by a scrolling or hiding ancestor and
# the picture fits its box (object-fit contain, or the box has the picture's shape)
DRAWN_JS = """
const root = arguments[0];
return [...root.querySelectorAll("img")].map((image) => {
    const box = image.getBoundingClientRect();
    const fit = getComputedStyle(image).objectFit;
    const shapeKept = Math.abs(box.width / box.height - image.naturalWidth / image.naturalHeight) < 0.02;
    let clipped = false;
    for (let parent = image.parentElement; parent && parent !== document.body; parent = parent.parentElement) {
        const style = getComputedStyle(parent);
        if (style.overflowX !== "visible" || style.overflowY !== "visible") {
            const outer = parent.getBoundingClientRect();
            const inside = box.top >= outer.top - 1 && box.bottom <= outer.bottom + 1 &&
                box.left >= outer.left - 1 && box.right <= outer.right + 1;
            clipped = clipped || !inside;
        }
    }
    return {alt: image.alt, fit, shapeKept, clipped, width: box.width, height: box.height};
});
"""


def _names(page: Page, selector: str) -> list[tuple[str, str, str]]:
    return page.driver.execute_script(NAMES_JS, page.driver.find_element("css selector", selector))


def _assert_named_apart(page: Page, selector: str) -> int:
    names = _names(page, selector)
    unnamed = [html for _, name, html in names if not name]
    assert not unnamed, f"unnamed in {selector}: {unnamed}"
    seen = {}
    for _, name, html in names:
        seen.setdefault(name, []).append(html)
    repeated = {name: htmls for name, htmls in seen.items() if len(htmls) > 1}
    assert not repeated, f"names used twice in {selector}: {repeated}"
    return len(names)


def _info(page: Page, prefix: str) -> str:
    return " ".join(page.text(f"{prefix}-info").split())


def test_the_gallery_shows_each_result_whole_with_its_caption(page):
    page.type("generate-prompt", PROMPT)
    page.set_number("generate-num-images", 2)
    page.click("generate-button")
    page.wait_image("generate-gallery")
    page.wait_for(lambda: len(page.driver.find_elements("css selector", "#generate-gallery img")) == 2, TIMEOUT)
    time.sleep(1)
    drawn = page.driver.execute_script(DRAWN_JS, page.find("#generate-gallery"))
    assert len(drawn) == 2
    for image in drawn:
        assert not image["clipped"], image
        assert image["fit"] in ("contain", "scale-down") or image["shapeKept"], image
        assert image["width"] > 100 and image["height"] > 100, image
    captions = [element for element in page.driver.find_elements("css selector", "#generate-gallery .caption-label")]
    assert [caption.is_displayed() for caption in captions] == [True, True]
    texts = [caption.text for caption in captions]
    for number, text in enumerate(texts, start=1):
        assert text.startswith(f"image {number} of 2 · seed 0 · DPM-Solver++ · 15 steps · ") and text.endswith(" s")
    assert [image["alt"] for image in drawn] == texts


def test_errors_and_stops_are_text_in_the_info_line(page, app_server, tmp_path):
    _, _, callbacks = app_server
    page.click("generate-button")  # no prompt
    page.wait_message("Write a prompt first.")
    page.wait_for(lambda: _info(page, "generate") == "Write a prompt first.")
    time.sleep(1)
    assert page.find("#generate-info .error") is None or not page.find("#generate-info .error").is_displayed()

    page.type("generate-prompt", PROMPT)
    page.set_number("generate-steps", 999)  # long enough that Stop comes first on a busy machine
    page.click("generate-button")
    page.wait_for(lambda: "/999" in page.driver.page_source, TIMEOUT)
    page.click("generate-stop")
    page.wait_for(lambda: _info(page, "generate") == "Stopped.", TIMEOUT)
    page.wait_for(lambda: not callbacks._lock.locked(), TIMEOUT)
    assert _info(page, "generate") == "Stopped."

    # a file that is no image is refused at upload: the upload is cleared and the message is in the info line
    page.open_tab("Image to image", "img2img")
    (tmp_path / "notes.png").write_text("not an image")
    page.upload("img2img-image", tmp_path / "notes.png")
    message = "The image is not a PNG, JPEG, WebP, BMP, GIF or TIFF image."
    page.wait_for(lambda: message in _info(page, "img2img"))
    page.wait_message(message)
    page.wait_for(lambda: page.find("#img2img-image img") is None)


def test_a_new_input_clears_the_last_edit(page, tmp_path):
    page.open_editor()
    page.upload_to_editor(_scene(tmp_path / "scene.png"))
    page.paint_stroke(dy=60)
    page.type("edit-prompt", "a green square")
    page.set_number("edit-steps", 5)
    page.click("edit-button")
    page.wait_image("edit-result")
    page.wait_image("edit-mask")
    assert _info(page, "edit").startswith("Seed 0 · strength 1")
    page.click("edit-use-result")
    page.wait_for(lambda: page.image_url("edit-result") is None and page.image_url("edit-mask") is None)
    page.wait_for(lambda: _info(page, "edit") == "")


def test_every_image_and_button_has_its_own_name(page, tmp_path):
    page.type("generate-prompt", PROMPT)
    page.set_number("generate-num-images", 2)
    page.click("generate-button")
    page.wait_for(lambda: len(page.driver.find_elements("css selector", "#generate-gallery img")) == 2, TIMEOUT)
    time.sleep(1)
    assert _assert_named_apart(page, "#tab-generate") >= 6

    page.open_editor()
    page.upload_to_editor(_scene(tmp_path / "scene.png"))
    page.find("#edit-editor button[aria-label=Color]").click()
    page.wait_for(lambda: len(page.driver.find_elements("css selector", "#edit-editor button.color")) >= 10)
    time.sleep(0.5)
    assert _assert_named_apart(page, "#tab-edit") >= 20

    page.open_tab("Image to image", "img2img")
    page.upload("img2img-image", _scene(tmp_path / "scene.png"))
    page.wait_for(lambda: page.find("#img2img-image img"))
    time.sleep(0.5)
    _assert_named_apart(page, "#tab-img2img")
    page.open_tab("Upscale", "upscale")
    _assert_named_apart(page, "#tab-upscale")


def test_the_palette_names_the_mask_and_closes_on_a_choice(page, tmp_path):
    page.open_editor()
    page.upload_to_editor(_scene(tmp_path / "scene.png"))
    page.find("#edit-editor button[aria-label=Color]").click()
    page.wait_for(lambda: page.find("#edit-editor menu.swatch"))
    time.sleep(0.5)
    swatches = page.driver.find_elements("css selector", "#edit-editor menu.swatch button.color")
    labels = [swatch.get_attribute("aria-label") for swatch in swatches]
    assert labels[0].startswith("Mask") and labels[1] == "Colour white" and "Colour red" in labels
    selected = [
        swatch.get_attribute("aria-label") for swatch in swatches if "selected" in swatch.get_attribute("class")
    ]
    # Gradio 6.31 marks no swatch of a see-through brush colour; what it must not do is mark the opaque white one
    assert selected in ([], [labels[0]]), "an opaque swatch is marked while the brush paints see-through"
    # the page marks the swatch of the brush's colour: the mask at first
    pressed = [
        swatch.get_attribute("aria-label") for swatch in swatches if swatch.get_attribute("aria-pressed") == "true"
    ]
    assert pressed == [labels[0]]
    assert "glide-chosen" in swatches[0].get_attribute("class")
    # the see-through swatch is drawn on a checkerboard, opaque, so that it shows on the white page
    style = page.driver.execute_script(
        "const s = getComputedStyle(arguments[0]); return [s.opacity, s.backgroundImage]", swatches[0]
    )
    assert style[0] == "1" and "gradient" in style[1]
    next(swatch for swatch in swatches if swatch.get_attribute("aria-label") == "Colour red").click()
    page.wait_for(lambda: page.find("#edit-editor menu.swatch") is None)
    # opened again, the palette marks red, and only red
    page.find("#edit-editor button[aria-label=Color]").click()
    page.wait_for(lambda: page.find("#edit-editor menu.swatch"))
    time.sleep(0.5)
    swatches = page.driver.find_elements("css selector", "#edit-editor menu.swatch button.color")
    pressed = [
        swatch.get_attribute("aria-label") for swatch in swatches if swatch.get_attribute("aria-pressed") == "true"
    ]
    assert pressed == ["Colour red"]


def test_a_narrow_screen_shows_the_result_near_the_button(page):
    page.driver.set_window_size(400, 900)
    page.driver.get(page.url)
    page.wait_for(lambda: page.find("#generate-prompt textarea"))
    page.type("generate-prompt", PROMPT)
    page.set_number("generate-steps", 5)
    page.click("generate-button")
    page.wait_image("generate-gallery")
    time.sleep(1)
    box, height = page.driver.execute_script(
        "const r = document.querySelector('#generate-gallery img').getBoundingClientRect();"
        "return [[r.top, r.bottom], window.innerHeight]"
    )
    assert 0 <= box[0] and box[1] <= height, f"the result is drawn at {box} in a window {height} pixels high"
    # the editor's label is not under its toolbar
    page.open_editor()
    label, toolbar = page.driver.execute_script(
        "const e = document.querySelector('#edit-editor');"
        "const l = e.querySelector('[data-testid=block-label]').getBoundingClientRect();"
        "const t = e.querySelector('button[aria-label=Pan]').getBoundingClientRect();"
        "return [[l.top, l.bottom, l.left, l.right], [t.top, t.bottom, t.left, t.right]]"
    )
    overlap = not (
        label[1] <= toolbar[0] or toolbar[1] <= label[0] or label[3] <= toolbar[2] or toolbar[3] <= label[2]
    )
    assert not overlap, f"label {label} overlaps the toolbar {toolbar}"


def test_a_reload_keeps_the_prompts(page):
    page.type("generate-prompt", PROMPT)
    page.open_tab("Image to image", "img2img")
    page.type("img2img-prompt", "a green square")
    time.sleep(1)  # the page stores the prompt after its input event
    page.driver.refresh()
    page.wait_for(lambda: page.find("#generate-prompt textarea"))
    page.wait_for(lambda: page.find("#generate-prompt textarea").get_attribute("value") == PROMPT)
    page.open_tab("Image to image", "img2img")
    assert page.find("#img2img-prompt textarea").get_attribute("value") == "a green square"
