"""Loading GLIDE pipelines from the Hugging Face Hub, offline: the repos are laid out by hand in a temporary
Hugging Face cache exactly as `huggingface_hub` leaves them after a download, with offline mode on and
sockets refused.

Cache layout (huggingface_hub 2.x), for the repo `someone/glide-base`:
```
<HF_HUB_CACHE>/models--someone--glide-base/
  refs/main                     the commit hash that `main` points to
  blobs/<etag>                  file contents; etag = git blob sha1, or the sha256 of LFS files
  snapshots/<commit>/<path>     relative symlinks to the blobs
  trees/<commit>.json           the repo's file listing at that commit (written by `snapshot_download`)
```
"""

import hashlib
import json
import os
import re
import shutil
import socket
import sys
from pathlib import Path

import diffusers
import pytest
import torch
from conftest import MODEL_TYPES
from diffusers import DiffusionPipeline
from huggingface_hub import constants as hf_constants
from huggingface_hub import model_info
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import filter_repo_objects

import diffusers_glide
from diffusers_glide import GlidePipeline, GlideTextEncoder, GlideUNet2DModel
from diffusers_glide.pipelines import hub
from diffusers_glide.pipelines.hub import pipeline_file_patterns
from diffusers_glide.pipelines.pipeline_glide_base import GlideBasePipeline
from diffusers_glide.variants import VARIANTS

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_SUFFIXES = (".safetensors", ".bin")
GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def cache_hub_repo(hub_cache: Path, repo_id: str, folder: Path, commit: str = COMMIT, omit=()) -> Path:
    """Put `folder` into `hub_cache` as the snapshot of `repo_id` at `commit` (= `main`), as a download would.

    The files in `omit` are in the repo's listing (`trees/`) but were not downloaded.
    """
    files = {".gitattributes": GITATTRIBUTES}
    files.update({p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()})
    storage = hub_cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = storage / "snapshots" / commit
    tree = {}
    for path, data in files.items():
        blob_id = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        entry = {"size": len(data), "blob_id": blob_id}
        etag = blob_id
        if path.endswith(LFS_SUFFIXES):
            etag = hashlib.sha256(data).hexdigest()
            entry.update(lfs_sha256=etag, lfs_size=len(data))
        tree[path] = entry
        if path in omit:
            continue
        blob = storage / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / path
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / "main").write_text(commit)
    (storage / "trees").mkdir(exist_ok=True)
    (storage / "trees" / f"{commit}.json").write_text(json.dumps({"format_version": 1, "files": tree}, indent=1))
    return snapshot


class NetworkAccessAttempted(AssertionError):
    """Not an OSError, so that no HTTP client can mistake it for "offline" and fall back silently."""


@pytest.fixture
def network_attempts(monkeypatch):
    """Refuse sockets; the test fails if anything tried to connect (even if the error was swallowed)."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise NetworkAccessAttempted(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    yield attempts
    assert not attempts, f"the test tried to reach the network: {attempts}"


@pytest.fixture
def offline_hub(tmp_path, monkeypatch, network_attempts):
    """An empty Hugging Face cache in a temporary HF_HOME, offline mode on, no token, no network.

    Returns the hub cache folder (`HF_HUB_CACHE`).
    """
    home = tmp_path / "hf_home"
    hub_cache = home / "hub"
    hub_cache.mkdir(parents=True)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_OIDC_ID_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub and diffusers read these when imported, so the environment alone is not enough.
    monkeypatch.setattr(hf_constants, "HF_HOME", str(home))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(hf_constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr("huggingface_hub.utils._cache_manager.HF_HUB_CACHE", str(hub_cache))
    for module in ("diffusers.utils.hub_utils", "diffusers.loaders.lora_base", "diffusers.models.attention_dispatch"):
        monkeypatch.setattr(f"{module}.HF_HUB_OFFLINE", True)
    # Where diffusers copies remote code to (trust_remote_code), and which it appends to sys.path.
    for module in ("diffusers.utils", "diffusers.utils.constants", "diffusers.utils.dynamic_modules_utils"):
        monkeypatch.setattr(f"{module}.HF_MODULES_CACHE", str(home / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    return hub_cache


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def sample(pipe) -> torch.Tensor:
    # One thread: the fixture models are tiny, and intra-op threads compete badly for a busy CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(0)
        return pipe("an oil painting of a corgi", num_inference_steps=2, generator=generator, output_type="pt").images
    finally:
        torch.set_num_threads(threads)


def test_offline_mode_is_really_on(offline_hub, network_attempts):
    assert os.environ["HF_HUB_OFFLINE"] == "1" and hf_constants.is_offline_mode()
    with pytest.raises(OfflineModeIsEnabled):
        model_info("someone/glide-base")
    with pytest.raises(NetworkAccessAttempted):
        socket.create_connection(("huggingface.co", 443))
    network_attempts.clear()  # that attempt was on purpose


def test_glide_pipeline_from_hub_repo_matches_the_local_folder(offline_hub, converted_folders):
    folder = converted_folders["base"]
    snapshot = cache_hub_repo(offline_hub, "someone/glide-base", folder)

    hub_pipe = GlidePipeline.from_pretrained("someone/glide-base")
    local_pipe = GlidePipeline.from_pretrained(folder)

    assert Path(GlidePipeline.download("someone/glide-base")) == snapshot
    assert hub_pipe.name_or_path == "someone/glide-base"
    assert_same_weights(hub_pipe.unet, local_pipe.unet)
    assert_same_weights(hub_pipe.text_encoder, local_pipe.text_encoder)
    assert dict(hub_pipe.scheduler.config) == dict(local_pipe.scheduler.config)
    assert torch.equal(sample(hub_pipe), sample(local_pipe))


def test_from_pretrained_arguments_are_passed_through(offline_hub, converted_folders, tmp_path, monkeypatch):
    other_cache = tmp_path / "other_cache"
    cache_hub_repo(other_cache, "someone/glide-base", converted_folders["base"])
    with pytest.raises(OSError, match="not a local folder"):  # not in the default cache
        GlidePipeline.from_pretrained("someone/glide-base")

    pipe = GlidePipeline.from_pretrained(
        "someone/glide-base", cache_dir=other_cache, revision=COMMIT, local_files_only=True, dtype=torch.bfloat16
    )
    assert pipe.unet.dtype == pipe.text_encoder.dtype == torch.bfloat16

    calls = []
    real_snapshot_download = hub.snapshot_download
    # Recorded as passed, then fetched without `force_download`: offline, huggingface_hub >= 2.5 refuses it outright.
    monkeypatch.setattr(
        hub,
        "snapshot_download",
        lambda *a, **k: calls.append(k) or real_snapshot_download(*a, **{**k, "force_download": False}),
    )
    GlidePipeline.from_pretrained("someone/glide-base", cache_dir=other_cache, token="hf_x", force_download=True)
    assert [(c["cache_dir"], c["token"], c["force_download"], c["revision"]) for c in calls] == [
        (other_cache, "hf_x", True, None)
    ]

    with pytest.raises(OSError, match=r"'someone/glide-base' \(revision 'v2'\) is not a local folder"):
        GlidePipeline.from_pretrained("someone/glide-base", cache_dir=other_cache, revision="v2")

    # A component passed as an object is not fetched: its folder may be missing from the cache.
    cache_hub_repo(offline_hub, "someone/no-unet", converted_folders["base"], omit={"unet/config.json"})
    unet = GlideUNet2DModel.from_pretrained(converted_folders["base"], subfolder="unet")
    pipe = GlidePipeline.from_pretrained("someone/no-unet", unet=unet)
    assert pipe.unet is unet
    with pytest.raises(OSError, match=r"holds no complete copy.*unet/config\.json"):
        GlidePipeline.from_pretrained("someone/no-unet")


def test_variant_weights_with_per_component_fallback(offline_hub, converted_folders, tmp_path):
    folder = tmp_path / "glide-base-variant"
    shutil.copytree(converted_folders["base"], folder)
    unet = GlideUNet2DModel.from_pretrained(folder, subfolder="unet")
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.mul_(0.5)
    unet.save_pretrained(folder / "unet", variant="ema")  # the text encoder has no "ema" weights
    # Only the variant of the UNet was downloaded: the non-variant one is listed but not in the cache.
    cache_hub_repo(offline_hub, "someone/glide-variant", folder, omit={"unet/diffusion_pytorch_model.safetensors"})

    pipe = GlidePipeline.from_pretrained("someone/glide-variant", variant="ema")
    assert_same_weights(pipe.unet, unet)
    assert_same_weights(pipe.text_encoder, GlideTextEncoder.from_pretrained(folder, subfolder="text_encoder"))
    with pytest.raises(OSError, match=r"1 file\(s\) are missing \(unet/diffusion_pytorch_model\.safetensors\)"):
        GlidePipeline.from_pretrained("someone/glide-variant")


def test_download_patterns_fetch_only_what_a_pipeline_folder_needs():
    listing = [
        ".gitattributes",
        "README.md",
        "model_index.json",
        "pipeline.py",
        "samples/corgi.png",
        "scheduler/scheduler_config.json",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/merges.txt",
        "text_encoder/config.json",
        "text_encoder/diffusion_pytorch_model.safetensors",
        "unet/config.json",
        "unet/diffusers_glide.models.glide_unet.py",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
        "unet/diffusion_pytorch_model.bin",
    ]

    def selected(**kwargs):
        allow, ignore = pipeline_file_patterns(**kwargs)
        return set(filter_repo_objects(listing, allow_patterns=allow, ignore_patterns=ignore))

    configs = {
        "README.md",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer/merges.txt",
        "text_encoder/config.json",
        "unet/config.json",
    }
    assert selected() == configs | {
        "text_encoder/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.json",
    }
    assert selected(variant="fp16") == configs | {
        "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors",
        "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
    }
    assert selected(use_safetensors=False) == configs | {"unet/diffusion_pytorch_model.bin"}
    assert selected(skip_components=["unet", "tokenizer"]) == {
        "README.md",
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/diffusion_pytorch_model.safetensors",
    }


@pytest.mark.parametrize("model_type", MODEL_TYPES)
def test_each_glide_pipeline_loads_its_repo_from_the_hub(offline_hub, converted_folders, model_type):
    pipeline_class = getattr(diffusers_glide, VARIANTS[model_type].pipeline_class)
    folder = converted_folders[model_type]
    cache_hub_repo(offline_hub, f"someone/glide-{model_type}", folder)
    pipe = pipeline_class.from_pretrained(f"someone/glide-{model_type}")
    assert type(pipe) is pipeline_class
    assert_same_weights(pipe.unet, GlideUNet2DModel.from_pretrained(folder, subfolder="unet"))


def test_glide_pipeline_subclasses_inherit_hub_loading(offline_hub, converted_folders):
    class TinyGlidePipeline(GlideBasePipeline):
        pass

    folder = converted_folders["upsample"]
    cache_hub_repo(offline_hub, "someone/glide-upsample", folder)
    pipe = TinyGlidePipeline.from_pretrained("someone/glide-upsample")
    assert type(pipe) is TinyGlidePipeline and pipe.unet.config.super_resolution
    assert_same_weights(pipe.unet, GlideUNet2DModel.from_pretrained(folder, subfolder="unet"))

    exported = [c for c in vars(diffusers_glide).values() if isinstance(c, type) and issubclass(c, GlideBasePipeline)]
    assert GlidePipeline in exported
    for pipeline_class in exported:
        assert pipeline_class.download.__func__ is GlideBasePipeline.download.__func__, pipeline_class


def test_component_modules_are_loadable_by_diffusers(converted_folders):
    # diffusers resolves a component library named in model_index.json from sys.modules only (importing
    # diffusers_glide imports them all), then finds the load method by looking its base classes up as
    # attributes of that module (pipeline_loading_utils.get_class_obj_and_candidates).
    model_index = json.loads((converted_folders["base"] / "model_index.json").read_text())
    bases = {"unet": "ModelMixin", "text_encoder": "ModelMixin", "scheduler": "SchedulerMixin"}
    for name, base in bases.items():
        library, class_name = model_index[name]
        module = sys.modules[library]
        assert getattr(module, base) is getattr(diffusers, base) and issubclass(
            getattr(module, class_name), getattr(diffusers, base)
        )


def test_missing_repo_gives_a_clear_error(offline_hub, tmp_path):
    message = (
        r"'someone/does-not-exist' is not a local folder, and the Hugging Face cache \(.*\) holds no complete copy "
        r"of this pipeline, which cannot be downloaded now \(offline mode: HF_HUB_OFFLINE=1\)"
    )
    with pytest.raises(OSError, match=message):
        GlidePipeline.from_pretrained("someone/does-not-exist")

    (tmp_path / "not-a-pipeline").mkdir()
    (tmp_path / "not-a-pipeline" / "README.md").write_text("# a model repo, but no pipeline\n")
    cache_hub_repo(offline_hub, "someone/not-a-pipeline", tmp_path / "not-a-pipeline")
    with pytest.raises(OSError, match="The Hub repo 'someone/not-a-pipeline' has no model_index.json"):
        GlidePipeline.from_pretrained("someone/not-a-pipeline")


# ---------------------------------------------------------------------------------------------------------------
# DiffusionPipeline.from_pretrained (diffusers 0.42.1) cannot load GLIDE repos; these pin why (see README).


def test_diffusion_pipeline_cannot_load_glide_repos(offline_hub, converted_folders):
    cache_hub_repo(offline_hub, "someone/glide-base", converted_folders["base"])
    # DiffusionPipeline.download -> _get_custom_components_and_folders: a library that is not diffusers /
    # transformers must ship as `<component>/<library>.py` in the repo; installed modules are not looked at.
    # (Components are checked in model_index.json order, so the scheduler is named.)
    message = (
        "scheduler/diffusers_glide.schedulers.scheduling_glide.py as defined in `model_index.json` does not exist "
        "in someone/glide-base and is not a module in 'diffusers/pipelines'."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        DiffusionPipeline.from_pretrained("someone/glide-base", trust_remote_code=True)
    # From a local folder: _get_pipeline_class looks "GlidePipeline" up in the diffusers module only.
    with pytest.raises(AttributeError, match="module diffusers has no attribute GlidePipeline"):
        DiffusionPipeline.from_pretrained(converted_folders["base"], trust_remote_code=True)


def test_code_shims_in_the_repo_would_not_help(offline_hub, converted_folders, tmp_path):
    # What it would take to satisfy diffusers' custom-code mechanism: a `.py` per component and a pipeline
    # module named by `_class_name`, each only importing the installed diffusers_glide class.
    folder = tmp_path / "glide-base-shims"
    shutil.copytree(converted_folders["base"], folder)
    model_index = json.loads((folder / "model_index.json").read_text())
    for name in ("scheduler", "text_encoder", "unet"):
        library, class_name = model_index[name]
        (folder / name / f"{library}.py").write_text(f"from {library} import {class_name}  # noqa: F401\n")
    (folder / "pipeline_glide.py").write_text("from diffusers_glide.pipelines.pipeline_glide import GlidePipeline\n")
    model_index["_class_name"] = ["pipeline_glide", "GlidePipeline"]
    (folder / "model_index.json").write_text(json.dumps(model_index))

    # 1. diffusers would then prefer the `.py` found in the folder to the installed class and need
    #    trust_remote_code=True; GlidePipeline never runs code from a folder and refuses it.
    with pytest.raises(ValueError, match="contains custom code in pipeline_glide.py"):
        DiffusionPipeline.from_pretrained(folder)
    with pytest.raises(
        ValueError, match=r"names custom pipeline code as its class \(\['pipeline_glide', 'GlidePipeline'\]\)"
    ):
        GlidePipeline.from_pretrained(folder)
    # 2. From the Hub, diffusers asks the Hub for the commit of the code file (get_cached_module_file ->
    #    model_info) even when everything is cached, so this route never works offline.
    cache_hub_repo(offline_hub, "someone/glide-shims", folder)
    with pytest.raises(OfflineModeIsEnabled):
        DiffusionPipeline.from_pretrained("someone/glide-shims", trust_remote_code=True)


def test_clip_guidance_components_from_the_hub(offline_hub, converted_folders, converted_clip_folder, tmp_path):
    """A converted noised-CLIP repo loads with `load_clip_guidance(repo_id)`, and a pipeline repo that holds the
    CLIP components (as `save_pretrained` writes it) loads with them."""
    cache_hub_repo(offline_hub, "someone/glide-base", converted_folders["base"])
    cache_hub_repo(offline_hub, "someone/glide-clip", converted_clip_folder)
    pipe = GlidePipeline.from_pretrained("someone/glide-base")
    assert not pipe.has_clip_guidance
    pipe.load_clip_guidance("someone/glide-clip")
    local = GlidePipeline.from_pretrained(converted_folders["base"])
    local.load_clip_guidance(converted_clip_folder)
    assert_same_weights(pipe.clip_image_encoder, local.clip_image_encoder)
    assert_same_weights(pipe.clip_text_encoder, local.clip_text_encoder)
    assert pipe.clip_tokenizer("a corgi").input_ids == local.clip_tokenizer("a corgi").input_ids

    local.save_pretrained(tmp_path / "with-clip")
    cache_hub_repo(offline_hub, "someone/glide-base-clip", tmp_path / "with-clip")
    combined = GlidePipeline.from_pretrained("someone/glide-base-clip")
    assert combined.has_clip_guidance
    assert_same_weights(combined.clip_image_encoder, local.clip_image_encoder)
