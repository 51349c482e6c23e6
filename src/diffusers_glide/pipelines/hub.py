"""Fetching a GLIDE pipeline repo from the Hugging Face Hub (used by `GlideBasePipeline.download`).

diffusers' own `DiffusionPipeline.download` (0.42) refuses a GLIDE repo before downloading anything: to
compute which files to fetch it checks every component library named in `model_index.json`, and accepts only
`diffusers`, `transformers`, a `diffusers.pipelines` module, or a `<component>/<library>.py` file shipped in
the repo. Our components are recorded as installed modules (`diffusers_glide.models.glide_unet`, ...), which
diffusers can load from a local folder once they are imported, but the download check does not look at
installed modules and raises `ValueError: scheduler/diffusers_glide.schedulers.scheduling_glide.py as defined
in model_index.json does not exist in <repo> ...`.

So the GLIDE pipelines fetch their repo here, with a `snapshot_download` of the files a pipeline folder
holds (model_index.json, README.md, and per component folder its JSON configs, tokenizer files and weights),
and `DiffusionPipeline.from_pretrained` then loads the downloaded folder exactly as it loads a local one.
Python files are never downloaded, so no code from the repo is ever run.
"""

import json
import os
from collections.abc import Iterable
from pathlib import Path

from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

PIPELINE_CONFIG_NAME = "model_index.json"
# Per component folder: configs (config.json, scheduler_config.json, tokenizer_config.json, tokenizer.json,
# *.safetensors.index.json, ...), slow-tokenizer vocabularies (merges.txt, spiece.model) and weights.
COMPONENT_FILE_PATTERNS = ("*.json", "*.txt", "*.model")


def _weight_suffix(use_safetensors: bool | None) -> str:
    # diffusers' default (None) prefers safetensors, which is all the converter writes; pickled `.bin`
    # weights are fetched only on request.
    return ".bin" if use_safetensors is False else ".safetensors"


def pipeline_file_patterns(
    variant: str | None = None, use_safetensors: bool | None = None, skip_components: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """`(allow_patterns, ignore_patterns)` for `snapshot_download` of a pipeline repo (fnmatch patterns).

    Weights follow diffusers' file naming: `<name>.safetensors` / `<name>-00001-of-00002.safetensors`
    (+ `<name>.safetensors.index.json`), and for a variant `<name>.<variant>.safetensors` /
    `<name>.<variant>-00001-of-00002.safetensors` (+ `<name>.safetensors.index.<variant>.json`).
    Without `variant` only non-variant weights are fetched, with `variant` only that variant's. The folders
    in `skip_components` (components passed to `from_pretrained`) are not fetched at all.
    """
    suffix = _weight_suffix(use_safetensors)
    other_suffix = ".safetensors" if suffix == ".bin" else ".bin"
    allow = [PIPELINE_CONFIG_NAME, "README.md"] + [f"*/{pattern}" for pattern in COMPONENT_FILE_PATTERNS]
    ignore = [f"{name}/*" for name in skip_components] + [f"*/*{other_suffix}.index*.json"]
    if variant is None:
        allow.append(f"*/*{suffix}")
        # `<name>.<something><suffix>` (or `<name>.<something>-<shard><suffix>`) is a variant's weights, and
        # `<name><suffix>.index.<something>.json` a variant's index. Pipeline folders have no dots in their names.
        ignore += [f"*/*.*{suffix}", f"*/*{suffix}.index.*.json"]
    else:
        allow += [f"*/*.{variant}{suffix}", f"*/*.{variant}-*-of-*{suffix}"]
        ignore.append(f"*/*{suffix}.index.json")
    return allow, ignore


def _components_missing_variant(folder: Path, model_index: dict, variant: str, suffix: str) -> list[str]:
    """Model components (folders with a `config.json`) that got no `variant` weights."""
    missing = []
    for name, value in model_index.items():
        component = folder / name
        if name.startswith("_") or not isinstance(value, list) or not (component / "config.json").is_file():
            continue
        if not any(component.glob(f"*.{variant}{suffix}")) and not any(component.glob(f"*.{variant}-*{suffix}")):
            missing.append(name)
    return missing


def _cannot_fetch_error(repo_id, revision, cache_dir, local_files_only, error) -> OSError:
    where = f"'{repo_id}'" + (f" (revision '{revision}')" if revision else "")
    if isinstance(error, RevisionNotFoundError):
        return OSError(f"Revision '{revision}' does not exist in the Hub repo '{repo_id}'.")
    if isinstance(error, RepositoryNotFoundError):
        return OSError(
            f"{where} is neither a local folder nor a model repo on the Hugging Face Hub that you can access: "
            "check the name, and for a private or gated repo log in (`hf auth login`) or pass `token=`."
        )
    if local_files_only:
        reason = "local_files_only=True"
    elif hf_constants.HF_HUB_OFFLINE:
        reason = "offline mode: HF_HUB_OFFLINE=1"
    else:
        reason = "the Hub could not be reached"
    cache = cache_dir or hf_constants.HF_HUB_CACHE
    return OSError(
        f"{where} is not a local folder, and the Hugging Face cache ({cache}) holds no complete copy of this "
        f"pipeline, which cannot be downloaded now ({reason}). Details: {error}"
    )


def download_pipeline_snapshot(
    repo_id: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    proxies: dict | None = None,
    local_files_only: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    variant: str | None = None,
    use_safetensors: bool | None = None,
    skip_components: Iterable[str] = (),
    user_agent: dict | None = None,
) -> str:
    """Download (or find in the Hugging Face cache) the files of a pipeline repo; returns the snapshot folder.

    As diffusers does per component, a `variant` falls back to the non-variant weights of the model
    components that have no `variant` weights (one more `snapshot_download`, of that commit, for those).
    Raises `OSError` with the cause when the repo cannot be found, or is not (completely) cached offline.
    """
    skip_components = list(skip_components)
    download_kwargs = {
        "cache_dir": cache_dir,
        "force_download": force_download,
        "local_files_only": bool(local_files_only),
        "token": token,
        "user_agent": user_agent,
    }
    if proxies is not None:  # huggingface_hub >= 1.0 ignores per-call proxies (with a warning)
        download_kwargs["proxies"] = proxies

    def fetch(rev, **patterns_kwargs):
        allow, ignore = pipeline_file_patterns(use_safetensors=use_safetensors, **patterns_kwargs)
        try:
            return Path(
                snapshot_download(
                    repo_id, revision=rev, allow_patterns=allow, ignore_patterns=ignore, **download_kwargs
                )
            )
        except (RepositoryNotFoundError, RevisionNotFoundError, LocalEntryNotFoundError) as error:
            raise _cannot_fetch_error(repo_id, rev, cache_dir, local_files_only, error) from error

    folder = fetch(revision, variant=variant, skip_components=skip_components)
    if not (folder / PIPELINE_CONFIG_NAME).is_file():
        raise OSError(
            f"The Hub repo '{repo_id}' has no {PIPELINE_CONFIG_NAME} at its root: it is not a diffusers pipeline "
            "(convert a GLIDE checkpoint with convert_glide_to_diffusers.py and push that folder)."
        )
    if variant is not None:
        model_index = json.loads((folder / PIPELINE_CONFIG_NAME).read_text())
        missing = _components_missing_variant(folder, model_index, variant, _weight_suffix(use_safetensors))
        fallback = [name for name in missing if name not in skip_components]
        if fallback:
            # The snapshot folder is named after its commit: fetch the rest from the very same commit.
            others = [name for name, value in model_index.items() if isinstance(value, list) and name not in fallback]
            fetch(folder.name, skip_components=skip_components + others)
    return str(folder)
