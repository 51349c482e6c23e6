"""How the app is served: safe defaults, the upload limit, what the server refuses, and `diffusers-glide serve`."""

import urllib.error
import urllib.request

import pytest

from diffusers_glide.app import launch_options
from diffusers_glide.app.server import file_size_bytes, upload_guard_js
from diffusers_glide.cli import main

# Under pytest-xdist the app server tests share one worker, so one app server (and one Chromium) is started.
pytestmark = pytest.mark.xdist_group("app_server")


def test_launch_options_serve_this_machine_only_without_a_share_link():
    options = launch_options()
    assert options["server_name"] == "127.0.0.1"
    assert options["server_port"] == 7860
    assert options["share"] is False
    assert options["max_file_size"] == 10_000_000
    assert "allowed_paths" not in options  # no folder of the machine is served
    assert "const limit = 10000000;" in options["js"]
    assert 'const limitText = "10 MB";' in options["js"]


@pytest.mark.parametrize(
    ("size", "expected"), [("10mb", 10_000_000), ("512 KB", 512_000), (2_000_000, 2_000_000), ("1.5gb", 1_500_000_000)]
)
def test_file_sizes_read_like_gradios(size, expected):
    assert file_size_bytes(size) == expected


@pytest.mark.parametrize(
    ("size", "message"),
    [
        ("ten megabytes", "Cannot read the file size 'ten megabytes': write it like 10mb, 512kb or 2000000 (bytes)."),
        ("0mb", "The upload limit must be positive, got '0mb'."),
    ],
)
def test_bad_file_sizes_are_refused(size, message):
    with pytest.raises(ValueError) as excinfo:
        file_size_bytes(size)
    assert str(excinfo.value) == message


def test_the_upload_guard_names_the_limit():
    script = upload_guard_js("500kb")
    assert "const limit = 500000;" in script and 'const limitText = "500 kB";' in script
    assert "__LIMIT" not in script


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_server_refuses_files_outside_its_uploads(app_server):
    url, _, _ = app_server
    assert _status(url + "/") == 200
    assert _status(url + "/gradio_api/file=/etc/passwd") == 403
    assert _status(url + "/gradio_api/file=" + __file__) == 403


def test_serve_help_and_argument_errors_need_no_server(capsys):
    assert main(["serve", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--host HOST" in out and "127.0.0.1" in out and "--share" in out and "--max_file_size" in out
    assert main(["serve", "--port", "0"]) == 2
    assert "argument --port: expected a port number in 1..65535, got 0" in capsys.readouterr().err


def test_serve_reports_bad_options_before_loading_models(capsys):
    assert main(["serve", "--max_file_size", "lots"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: Cannot read the file size 'lots': write it like 10mb, 512kb or 2000000 (bytes)."
    )
    assert main(["serve", "--device", "meta"]) == 2
    assert "error: --device meta: cannot sample on a 'meta' device" in capsys.readouterr().err


def test_serve_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    import sys

    for name in [
        name for name in sys.modules if name == "diffusers_glide.app" or name.startswith("diffusers_glide.app.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gradio", None)  # what `import gradio` sees when it is not installed
    assert main(["serve"]) == 2
    assert capsys.readouterr().err.strip() == (
        'error: The web app needs Gradio: install the app extra, `pip install "diffusers-glide[app]"`.'
    )
