"""Browser sessions: a request whose page was reloaded or closed stops at its next step and frees the queue, and two
visitors' results and histories never mix. Unit tests without a browser first, then headless Chromium."""

import json
import time
import urllib.request

import gradio as gr
import pytest

from diffusers_glide.app import GlideAppCallbacks, build_app, load_app_models
from diffusers_glide.app import sessions as sessions_module
from diffusers_glide.app.models import ANCESTRAL

from .conftest import new_chromium
from .test_app_browser import PROMPT, TIMEOUT, Page, _scene

pytestmark = pytest.mark.xdist_group("app_server")


class _Session:
    def __init__(self, session_hash):
        self.session_hash = session_hash


class _QueueEvent:
    alive = True


@pytest.fixture(scope="module")
def models():
    return load_app_models()


@pytest.fixture()
def app(models):
    return GlideAppCallbacks(models)


def _count_unet_calls(unet, each_call=None) -> list[float]:
    """Count the forward calls of `unet` (their times) until `del unet.forward`; `each_call()` runs before each."""
    calls, forward = [], unet.forward

    def counted(*args, **kwargs):
        calls.append(time.monotonic())
        if each_call is not None:
            each_call()
        return forward(*args, **kwargs)

    unet.forward = counted
    return calls


# ---------------------------------------------------------------------------------------------------------------
# Without a browser


def test_a_session_that_left_its_page_stops_its_job_at_the_next_step(app, models):
    calls = _count_unet_calls(models.base.unet, lambda: app.sessions.close(_Session("alice")))  # the unload event
    try:
        with pytest.raises(gr.Error, match="Stopped."):
            app.generate(PROMPT, "", 3.0, 20, ANCESTRAL, 0, False, 1, request=_Session("alice"))
    finally:
        del models.base.unet.forward
    assert len(calls) == 1  # stopped after the first of 20 steps
    assert not app._lock.locked() and not app._stop_events
    # other sessions run on; one that has left never runs again (a page load is a new session)
    gallery, _, _ = app.generate(PROMPT, "", 3.0, 2, ANCESTRAL, 0, False, 1, request=_Session("bob"))
    assert len(gallery) == 1
    calls = _count_unet_calls(models.base.unet)
    try:
        with pytest.raises(gr.Error, match="Stopped."):
            app.generate(PROMPT, "", 3.0, 2, ANCESTRAL, 0, False, 1, request=_Session("alice"))
    finally:
        del models.base.unet.forward
    assert calls == []


def test_a_queue_event_whose_client_disconnected_stops_at_the_next_step(app, models, monkeypatch):
    """Gradio marks the queue event of a client whose event stream closed not alive (API clients included)."""
    event = _QueueEvent()
    monkeypatch.setattr(sessions_module, "_running_queue_event", lambda: event)

    def disconnect():
        event.alive = False

    calls = _count_unet_calls(models.base.unet, disconnect)
    try:
        with pytest.raises(gr.Error, match="Stopped."):
            app.generate(PROMPT, "", 3.0, 20, ANCESTRAL, 0, False, 1, request=_Session("carol"))
    finally:
        del models.base.unet.forward
    assert len(calls) == 1
    assert not app.sessions.is_gone("carol")  # the request stopped, the session is not marked


def test_direct_calls_have_no_queue_event_and_run_to_the_end(app):
    assert sessions_module._running_queue_event() is None
    gallery, info, _ = app.generate(PROMPT, "", 3.0, 3, ANCESTRAL, 5, False, 1)
    assert info.startswith("Seed 5 ")


def test_the_sessions_remembered_are_bounded():
    watch = sessions_module.SessionWatch(remembered=3)
    for name in "abcde":
        watch.close(_Session(name))
    watch.close(None)  # no request: nothing to remember
    assert [name for name in "abcde" if watch.is_gone(name)] == ["c", "d", "e"]
    assert not watch.is_gone(None)


def test_the_page_registers_the_unload_listener(models):
    demo = build_app(models)
    unload = [fn for fn in demo.fns.values() if any(target[1] == "unload" for target in fn.targets)]
    assert [fn.fn for fn in unload] == [demo.glide_callbacks.sessions.close]


def test_an_api_client_that_closes_its_event_stream_stops_its_request(app_server):
    """An API client holds no heartbeat connection: the queue's own signal (the closed event stream) stops it."""
    url, models, callbacks = app_server
    steps = 1000
    calls = _count_unet_calls(models.base.unet)
    try:
        data = [PROMPT, "", 3.0, steps, ANCESTRAL, 0, False, 1, 0.0, False, 2, ANCESTRAL]
        post = urllib.request.Request(
            url + "/gradio_api/call/generate",
            data=json.dumps({"data": data}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=60) as response:
            event_id = json.loads(response.read())["event_id"]
        with urllib.request.urlopen(url + f"/gradio_api/call/generate/{event_id}", timeout=120):
            deadline = time.monotonic() + TIMEOUT
            while len(calls) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
        closed = time.monotonic()  # the stream is closed: the client left
        deadline = closed + TIMEOUT
        while (callbacks._lock.locked() or len(calls) < 5) and time.monotonic() < deadline:
            time.sleep(0.05)
        freed = time.monotonic()
    finally:
        del models.base.unet.forward
    assert 5 <= len(calls) < steps
    assert freed - closed < 1.5, f"the request ran on for {freed - closed:.1f} s after its client left"


# ---------------------------------------------------------------------------------------------------------------
# In headless Chromium


@pytest.fixture()
def page(app_server, chromium):
    url, _, _ = app_server
    return Page(chromium, url).open()


@pytest.fixture()
def second_page(app_server):
    """A second browser: a second visitor, with its own session."""
    url, _, _ = app_server
    driver = new_chromium()
    try:
        yield Page(driver, url).open()
    finally:
        driver.quit()


def _run_times(demo) -> dict:
    """Gradio's record of the durations of completed runs, from which it estimates waits: {function: (runs, s)}."""
    return {fn: (record.count, record.process_time) for fn, record in demo._queue.process_time_per_fn.items()}


def test_reloading_the_page_stops_its_long_request_and_the_next_one_starts_at_once(page, app_server, app_demo):
    _, models, callbacks = app_server
    steps = 999  # DPM-Solver++'s most: ~40 s here
    run_times = _run_times(app_demo)
    calls = _count_unet_calls(models.base.unet)
    try:
        page.type("generate-prompt", PROMPT)
        page.set_number("generate-steps", steps)
        page.click("generate-button")
        page.wait_for(lambda: f"/{steps}" in page.driver.page_source, TIMEOUT)  # the progress bar follows the steps
        reloading = time.monotonic()
        page.driver.refresh()  # returns once the new page has loaded
        page.wait_for(lambda: not callbacks._lock.locked(), TIMEOUT)  # the pipelines are free again
        stopped_after = len(calls)
        page.open()
        page.type("generate-prompt", PROMPT)
        page.set_number("generate-steps", 5)
        page.click("generate-button")
        clicked = time.monotonic()
        image = page.wait_image("generate-gallery")
    finally:
        del models.base.unet.forward
    assert 0 < stopped_after < steps
    ran_on = calls[stopped_after - 1] - reloading  # the last step of the request of the page reloaded
    assert ran_on < 1.0, f"the reloaded page's request ran on for {ran_on:.1f} s"
    assert len(calls) == stopped_after + 5
    started = calls[stopped_after]
    assert started - clicked < 2.0, f"the next request waited {started - clicked:.1f} s"
    assert image.size == (32, 32)
    assert page.text("generate-info").startswith("Seed 0 · DPM-Solver++, 5 steps")
    # Gradio's wait estimates average the completed runs only: the stopped request is not among them
    generate = next(  # the event calls `generate` through the wrapper that also writes errors in the info line
        fn for fn in app_demo.fns.values() if getattr(fn.fn, "__wrapped__", fn.fn) == callbacks.generate
    )
    runs, seconds = _run_times(app_demo)[generate]
    runs_before, seconds_before = run_times.get(generate, (0, 0.0))
    assert runs == runs_before + 1 and seconds - seconds_before < 10


def test_two_visitors_see_only_their_own_results(page, second_page, tmp_path):
    for visitor, seed in ((page, 11), (second_page, 22)):
        visitor.type("generate-prompt", PROMPT)
        visitor.set_number("generate-seed", seed)
        visitor.set_number("generate-steps", 20)
    page.click("generate-button")
    second_page.click("generate-button")  # queued behind the first visitor's request
    first, second = page.wait_image("generate-gallery"), second_page.wait_image("generate-gallery")
    assert first.tobytes() != second.tobytes()
    assert page.text("generate-info").startswith("Seed 11 ")
    assert second_page.text("generate-info").startswith("Seed 22 ")

    # the first visitor's edit history is theirs: the second has nothing to undo
    page.open_editor()
    page.upload_to_editor(_scene(tmp_path / "scene.png"))
    page.paint_stroke(dy=60)
    page.type("edit-prompt", "a green square")
    page.click("edit-button")
    page.wait_image("edit-result")
    page.click("edit-use-result")
    page.wait_for(lambda: page.image_url("edit-result") is None)
    second_page.open_editor()
    second_page.click("edit-undo")
    second_page.wait_message("Nothing to undo.")
    page.click("edit-undo")
    time.sleep(2)
    assert not any("Nothing to undo" in message for message in page.messages())
