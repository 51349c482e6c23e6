"""The web app's browser tests: a server on a free local port and headless Chromium (Debian's chromium and
chromium-driver, which `.ci/run` installs), with a screenshot of the page when a test fails."""

import os
import shutil
import socket
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GLIDE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("GLIDE_CHROMEDRIVER", "/usr/bin/chromedriver")
# where failing browser tests leave a screenshot of the page (default: pytest's temporary folder)
FAILURE_SCREENSHOTS_ENV_VAR = "GLIDE_BROWSER_FAILURES"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def app_demo():
    """The app (its `gradio.Blocks`) on the embedded models, served on 127.0.0.1 at a free port."""
    from diffusers_glide.app import build_app, launch_options, load_app_models

    demo = build_app(load_app_models())
    demo.launch(prevent_thread_lock=True, quiet=True, **launch_options(port=_free_port()))
    try:
        yield demo
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_server(app_demo):
    """The served app: (url, its models, its callbacks)."""
    callbacks = app_demo.glide_callbacks
    return app_demo.local_url.rstrip("/"), callbacks.models, callbacks


def new_chromium():
    """A headless Chromium driven by Selenium (quit it when done). Missing browsers fail the tests under CI (which
    installs them)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        message = (
            f"headless Chromium is not installed ({', '.join(missing)}): apt-get install chromium chromium-driver"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        # no calls home: this machine's network is closed
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
    ):
        options.add_argument(flag)
    # the Service path keeps Selenium from downloading a driver
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture(scope="session")
def chromium():
    """Headless Chromium driven by Selenium, shared by the browser tests."""
    driver = new_chromium()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    driver = item.funcargs.get("chromium") if hasattr(item, "funcargs") else None
    if report.when == "call" and report.failed and driver is not None:
        folder = Path(os.environ.get(FAILURE_SCREENSHOTS_ENV_VAR) or item.config._tmp_path_factory.getbasetemp())
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{item.name}.png"
        driver.save_screenshot(str(path))
        report.sections.append(("browser screenshot", f"the page when the test failed: {path}"))
