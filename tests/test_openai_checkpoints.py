"""OpenAI's released checkpoints fetched, checked, converted and cached on first use (`openai_checkpoints.py`),
tested on the tiny fixture checkpoints served by a real HTTP server on 127.0.0.1 (`release_server.py`)."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import REFERENCE_DIR, REPO_ROOT
from release_server import ReleaseServer

from diffusers_glide import GlideInpaintPipeline, GlidePipeline, GlideUpsamplePipeline
from diffusers_glide.cli import main
from diffusers_glide.conversion import convert_glide_checkpoint
from diffusers_glide.openai_checkpoints import (
    CACHE_ENV,
    OPTIONS_ENV,
    RELEASE_URL,
    URL_ENV,
    CorruptCheckpointError,
    DownloadError,
    cache_dir,
    converted_folder,
    openai_model_path,
)
from diffusers_glide.vocabularies import vocabulary_dir

RECORDED = {entry["file"]: entry for entry in json.loads((REFERENCE_DIR / "index.json").read_text())["files"]}


@pytest.fixture
def server():
    with ReleaseServer() as running:
        yield running


@pytest.fixture
def cache(tmp_path, monkeypatch, server):
    """The cache in a fresh folder, the release served by `server`, with the options of its tiny checkpoints."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    monkeypatch.setenv(URL_ENV, server.url)
    monkeypatch.setenv(OPTIONS_ENV, str(REFERENCE_DIR))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return folder / "openai"


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(folder) -> list[str]:
    return (
        sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
        if folder.exists()
        else []
    )


def test_the_defaults_are_openais_release(monkeypatch, tmp_path):
    from diffusers_glide.openai_checkpoints import release_url

    monkeypatch.delenv(URL_ENV, raising=False)
    monkeypatch.delenv(CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert release_url() == RELEASE_URL == "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/"
    assert cache_dir() == tmp_path / "xdg" / "diffusers-glide"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == __import__("pathlib").Path.home() / ".cache" / "diffusers-glide"


def test_generate_with_openai_downloads_converts_once_then_loads_from_the_cache(cache, server, tmp_path, capsys):
    argv = ["generate", "a corgi", "--model", "openai", "--upsampler", "openai", "--steps", "2"]
    argv += ["--upsample_steps", "2", "--seed", "0", "--no_progress"]
    assert main([*argv, "-o", str(tmp_path / "first.png")]) == 0, capsys.readouterr().err
    assert server.hits == [("base.pt", None), ("upsample.pt", None)]
    # the downloads are the fixture files byte for byte, and their records say so
    for name, fixture in (("base.pt", "base.pt"), ("upsample.pt", "upsample.pt")):
        assert _sha256(cache / "downloads" / name) == RECORDED[fixture]["sha256"]
        record = json.loads((cache / "downloads" / f"{name}.json").read_text())
        assert record == {"file": name, "bytes": RECORDED[fixture]["bytes"], "sha256": RECORDED[fixture]["sha256"]}
    assert (cache / "base" / "model_index.json").is_file() and (cache / "upsample" / "model_index.json").is_file()

    assert main([*argv, "-o", str(tmp_path / "second.png")]) == 0
    assert len(server.hits) == 2  # no request: both stages load from the cache
    first, second = (np.asarray(PIL.Image.open(tmp_path / f"{name}.png")) for name in ("first", "second"))
    np.testing.assert_array_equal(first, second)
    assert PIL.Image.open(tmp_path / "first-low.png").size == (32, 32)
    assert PIL.Image.open(tmp_path / "first.png").size == (64, 64)


def test_the_cached_folder_is_the_converters_output(cache):
    pipe = GlidePipeline.from_pretrained(openai_model_path("base", progress=False))
    direct = convert_glide_checkpoint(
        REFERENCE_DIR / "base.pt",
        "base",
        vocabulary_dir(),
        json.loads((REFERENCE_DIR / "base.options.json").read_text()),
    )
    for name, tensor in direct.unet.state_dict().items():
        torch.testing.assert_close(pipe.unet.state_dict()[name], tensor, rtol=0, atol=0)
    assert pipe.tokenizer("a corgi").input_ids == direct.tokenizer("a corgi").input_ids


def test_every_stage_and_the_clip_load(cache, server):
    assert GlideInpaintPipeline.from_pretrained(
        openai_model_path("base-inpaint", progress=False)
    ).unet.config.inpainting
    upsampler = GlideUpsamplePipeline.from_pretrained(openai_model_path("upsample-inpaint", progress=False))
    assert upsampler.unet.config.inpainting and upsampler.unet.config.sample_size == 64
    pipe = GlidePipeline.from_pretrained(openai_model_path("base", progress=False))
    pipe.load_clip_guidance(openai_model_path("clip", progress=False))
    assert pipe.clip_image_encoder is not None
    assert sorted(name for name, _ in server.hits) == sorted(
        ["base_inpaint.pt", "upsample_inpaint.pt", "base.pt", "clip_image_enc.pt", "clip_text_enc.pt"]
    )


def test_a_dropped_connection_resumes_where_it_stopped(cache, server):
    server.drop_once.add("base.pt")
    with pytest.raises(DownloadError, match=r"The download of OpenAI's base\.pt stopped at byte [\d,]+ of [\d,]+"):
        openai_model_path("base", progress=False)
    partial = cache / "downloads" / "base.pt.incomplete"
    size = RECORDED["base.pt"]["bytes"]
    assert partial.stat().st_size == size // 2  # what arrived is kept
    assert not (cache / "base").exists()

    openai_model_path("base", progress=False)
    assert server.requests_for("base.pt") == [None, f"bytes={size // 2}-"]
    assert _sha256(cache / "downloads" / "base.pt") == RECORDED["base.pt"]["sha256"]
    assert not partial.exists()


@pytest.mark.parametrize("status", [404, 500])
def test_an_http_error_writes_nothing(cache, server, status):
    server.status["upsample.pt"] = status
    with pytest.raises(
        DownloadError, match=rf"upsample\.pt: {server.url}upsample\.pt answered {status} .* Nothing was written\."
    ):
        openai_model_path("upsample", progress=False)
    assert _files(cache) == [".locks/upsample.lock"]


def test_a_truncated_file_is_moved_aside_and_no_folder_is_written(cache, server):
    openai_model_path("upsample", progress=False)  # a good stage, which the failure must not touch
    good = {name: _sha256(cache / name) for name in _files(cache) if not name.startswith(".locks")}
    server.files["base.pt"] = server.files["base.pt"][:100_000]
    with pytest.raises(
        CorruptCheckpointError,
        match=r"OpenAI's base\.pt in the cache is not the released base checkpoint \(Could not read",
    ) as error:
        openai_model_path("base", progress=False)
    assert "Moved it aside as" in str(error.value) and "No folder was written." in str(error.value)
    assert not (cache / "base").exists()
    assert (cache / "downloads" / "base.pt.corrupt").stat().st_size == 100_000
    assert not (cache / "downloads" / "base.pt").exists() and not (cache / "downloads" / "base.pt.json").exists()
    assert {name: _sha256(cache / name) for name in good} == good

    server.files["base.pt"] = (REFERENCE_DIR / "base.pt").read_bytes()  # the next run downloads it anew
    openai_model_path("base", progress=False)
    assert (cache / "base" / "model_index.json").is_file()


def test_a_file_of_another_model_type_is_refused(cache, server):
    server.files["base.pt"] = server.files["upsample.pt"]
    with pytest.raises(CorruptCheckpointError, match=r"not the released base checkpoint"):
        openai_model_path("base", progress=False)
    assert not (cache / "base").exists()


def test_offline_mode_makes_no_request(cache, server, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    target = cache / "downloads" / "base.pt"
    message = (
        f"OpenAI's base.pt is not in the cache and HF_HUB_OFFLINE is set, so it was not downloaded: fetch "
        f"{server.url}base.pt elsewhere and put it at {target}. Nothing was written."
    )
    with pytest.raises(DownloadError) as error:
        openai_model_path("base", progress=False)
    assert str(error.value) == message
    assert server.hits == [] and _files(cache) == []  # not even a lock file

    # put there by hand, the file is recorded and converted, still without a request
    target.parent.mkdir(parents=True)
    target.write_bytes((REFERENCE_DIR / "base.pt").read_bytes())
    openai_model_path("base", progress=False)
    assert (
        server.hits == []
        and json.loads((cache / "downloads" / "base.pt.json").read_text())["sha256"] == RECORDED["base.pt"]["sha256"]
    )


def test_a_cached_file_is_checked_against_its_record(cache):
    openai_model_path("base", progress=False)
    download = cache / "downloads" / "base.pt"
    data = bytearray(download.read_bytes())
    data[-1000] ^= 1
    download.write_bytes(bytes(data))
    os.rename(cache / "base", cache / "base-old")  # the folder gone, the next use converts the file again
    with pytest.raises(ValueError, match=r"base\.pt changed since it was recorded"):
        openai_model_path("base", progress=False)
    assert not (cache / "base").exists()


def test_no_network_is_one_clear_error(cache, monkeypatch):
    monkeypatch.setenv(URL_ENV, "http://127.0.0.1:9/diffusion/dec-2021/")  # the discard port: refused
    with pytest.raises(
        DownloadError,
        match=r"Cannot download OpenAI's base\.pt from .* check the network, or fetch the file elsewhere and put it at .*base\.pt\. Nothing was written\.",
    ):
        openai_model_path("base", progress=False)


def test_two_processes_download_and_convert_once(tmp_path):
    code = "from diffusers_glide.openai_checkpoints import openai_model_path; print(openai_model_path('base', False))"
    with ReleaseServer(delay=0.5) as server:
        env = {
            **os.environ,
            CACHE_ENV: str(tmp_path / "cache"),
            URL_ENV: server.url,
            OPTIONS_ENV: str(REFERENCE_DIR),
            "OMP_NUM_THREADS": "1",
        }
        env.pop("HF_HUB_OFFLINE", None)
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", code],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO_ROOT,
            )
            for _ in range(2)
        ]
        results = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], results
    assert [out.strip() for out, _ in results] == [str(tmp_path / "cache" / "openai" / "base")] * 2
    assert server.hits == [("base.pt", None)]


def test_a_missing_model_names_openai_and_convert(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # the old README's `--model glide-base`, run before converting
    assert main(["generate", "a corgi", "--model", "glide-base", "-o", "x.png"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: 'glide-base' is not a local folder")
    assert "--model openai" in err and "`diffusers-glide convert`" in err


def test_download_command_fetches_ahead_of_time(cache, server, capsys):
    assert main(["download", "clip", "upsample", "--no_progress"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"clip: {converted_folder('clip')}", f"upsample: {converted_folder('upsample')}"]
    assert sorted(name for name, _ in server.hits) == ["clip_image_enc.pt", "clip_text_enc.pt", "upsample.pt"]
    assert main(["download", "clip", "--no_progress"]) == 0
    assert len(server.hits) == 3


def test_download_push_to_hub_uploads_the_cached_stage_with_its_repo_in_the_card(cache, monkeypatch, capsys):
    import diffusers_glide.conversion.convert

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, repo_type, private, exist_ok):
            calls["create"] = (repo_id, repo_type, private)

        def upload_folder(self, repo_id, folder_path, repo_type, commit_message):
            folder = __import__("pathlib").Path(folder_path)
            calls["upload"] = (repo_id, _files(folder), (folder / "README.md").read_text())

    monkeypatch.setattr(diffusers_glide.conversion.convert, "HfApi", FakeApi)
    assert main(["download", "base", "--push_to_hub", "--repo_id", "me/glide-base", "--private", "--no_progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Uploaded to https://huggingface.co/me/glide-base"
    assert calls["create"] == ("me/glide-base", "model", True)
    repo_id, files, card = calls["upload"]
    assert repo_id == "me/glide-base" and files == _files(cache / "base")
    assert 'GlidePipeline.from_pretrained("me/glide-base")' in card
    assert "license: mit" in card
    assert "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/base.pt" in card  # the weights' origin
    assert "## Limitations" in card
    # the cache's own card is untouched, and the staging copy is gone
    assert 'from_pretrained("path/to/this/folder")' in (cache / "base" / "README.md").read_text()
    assert not [path for path in cache.iterdir() if path.name.startswith(".push-")]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["download", "base", "--push_to_hub"],
            "error: --push_to_hub uploads one stage: give one NAME and its --repo_id.",
        ),
        (
            ["download", "base", "clip", "--push_to_hub", "--repo_id", "me/x"],
            "error: --push_to_hub uploads one stage: give one NAME and its --repo_id.",
        ),
        (["download", "base", "--repo_id", "me/x"], "error: --repo_id goes with --push_to_hub."),
    ],
)
def test_download_usage_errors(cache, server, capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == message
    assert server.hits == []


def test_the_web_app_serves_openais_models(cache, server):
    from diffusers_glide.app import load_app_models
    from diffusers_glide.app.help import models_line

    models = load_app_models(model="openai", inpaint="openai", upsampler="openai", clip="openai")
    assert models.base.unet.config.sample_size == models.inpaint.unet.config.sample_size == 32
    assert models.upsampler.unet.config.sample_size == 64 and models.has_clip
    assert models.inpaint_upsampler is None
    assert models.names == {
        "base": "openai",
        "inpaint": "openai",
        "upsampler": "openai",
        "inpaint_upsampler": None,
        "clip": "openai",
    }
    assert models_line(models) == "**Model:** OpenAI's released GLIDE (filtered)"  # the page's header
    assert sorted(name for name, _ in server.hits) == sorted(
        ["base.pt", "base_inpaint.pt", "upsample.pt", "clip_image_enc.pt", "clip_text_enc.pt"]
    )
