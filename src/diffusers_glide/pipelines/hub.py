"""Loading a GLIDE pipeline from a folder or the Hugging Face Hub: [`GlidePipelineLoadingMixin`], which gives
[`GlideBasePipeline`] (and so every GLIDE pipeline) its `from_pretrained`, `from_pipe` and `download`, and the
Hub snapshot download behind `download`.

`from_pretrained` checks a folder before diffusers reads it (`check_pipeline_folder`: a `model_index.json` naming
this GLIDE pipeline class, every component fitting its slot as `component_slots.py` says, no listed component
folder missing), so that a wrong or incomplete folder gets an error naming the cause.

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
from huggingface_hub.utils import validate_hf_hub_args

from ..variants import PIPELINE_CLASSES, models_pipeline_class
from .checks import check_hub_id
from .component_slots import check_component_slots, refuse_remote_code

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


class GlidePipelineLoadingMixin:
    """Loading of the GLIDE pipelines from a folder or a Hub repo id: `from_pretrained` (with the folder checks of
    `check_pipeline_folder`), `from_pipe` and `download`. Mixed into [`GlideBasePipeline`] before
    `DiffusionPipeline`, whose methods it wraps."""

    @classmethod
    def glide_class_name(cls) -> str | None:
        """The GLIDE pipeline class `cls` is (or derives from); None for GlideBasePipeline, which runs any variant."""
        return next((c.__name__ for c in cls.__mro__ if c.__name__ in PIPELINE_CLASSES), None)

    @classmethod
    @validate_hf_hub_args
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs):
        r"""
        Load a GLIDE pipeline from a folder or a Hub repo id, as diffusers' `DiffusionPipeline.from_pretrained` does
        (every argument of it works the same), after checking that the folder holds this pipeline class and all the
        component folders its `model_index.json` lists, each naming a class that fits its slot (see
        `component_slots.py`). No code from the folder runs: diffusers' `trust_remote_code`, `custom_pipeline` and
        `custom_revision` are refused.
        """
        refuse_remote_code(kwargs, f"{cls.__name__}.from_pretrained")
        name = os.fspath(pretrained_model_name_or_path)
        folder = name if os.path.isdir(name) else cls.download(check_hub_id(name, "pipeline folder"), **kwargs)
        cls.check_pipeline_folder(Path(folder), passed=kwargs)
        pipeline = super().from_pretrained(folder, **kwargs)
        pipeline.register_to_config(_name_or_path=name)  # the repo id, not its cache folder, as diffusers records
        return pipeline

    @classmethod
    def check_pipeline_folder(cls, folder: Path, passed: dict) -> None:
        """Raise the loader's error when `folder` is not a complete pipeline folder of this class: no (valid)
        `model_index.json`, another or no GLIDE pipeline class, a component that does not fit its slot, or a listed
        component folder missing (unless that component is in `passed`)."""
        index_file = folder / PIPELINE_CONFIG_NAME
        if not index_file.is_file():
            raise OSError(
                f"{folder} is not a diffusers pipeline folder (it has no {PIPELINE_CONFIG_NAME}): give a folder written "
                "by `diffusers-glide convert`, the trainer or `save_pretrained`."
            )
        try:
            model_index = json.loads(index_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"{index_file} is not valid JSON: {error}") from error
        class_name = model_index.get("_class_name") if isinstance(model_index, dict) else None
        if isinstance(class_name, list):
            raise ValueError(
                f"{folder} names custom pipeline code as its class ({class_name}): diffusers-glide never runs code from "
                "a model folder; its model_index.json must name one of " + ", ".join(PIPELINE_CLASSES) + "."
            )
        if class_name not in PIPELINE_CLASSES:
            raise ValueError(
                f"{folder} holds a {class_name or 'pipeline without `_class_name`'}, not a GLIDE pipeline "
                f"({', '.join(PIPELINE_CLASSES)})."
            )
        # GlideBasePipeline (and subclasses of it alone) load any GLIDE pipeline folder.
        expected = cls.glide_class_name()
        if expected is not None and models_pipeline_class(class_name) != models_pipeline_class(expected):
            raise ValueError(
                f"{folder} holds a {class_name}, not a {expected}: load it with `{class_name}.from_pretrained`."
            )
        check_component_slots(folder, model_index, passed)
        for name, entry in model_index.items():
            listed = isinstance(entry, list) and entry and entry[0] is not None
            if listed and not name.startswith("_") and name not in passed and not (folder / name).is_dir():
                raise OSError(
                    f"The pipeline folder {folder} lacks the `{name}/` folder that its {PIPELINE_CONFIG_NAME} lists "
                    f"({entry[-1]}): the folder is incomplete; copy it again or redo the conversion."
                )

    @classmethod
    def from_pipe(cls, pipeline, **kwargs):
        """diffusers' `from_pipe`, keeping the dtype of `pipeline`'s models unless `dtype` / `torch_dtype` is given.

        diffusers casts the new pipeline to float32 by default, which also casts the models it shares with
        `pipeline`: a bfloat16 pipeline would silently run in float32."""
        if "dtype" not in kwargs and "torch_dtype" not in kwargs:
            kwargs["dtype"] = pipeline.dtype
        return super().from_pipe(pipeline, **kwargs)

    @classmethod
    @validate_hf_hub_args
    def download(cls, pretrained_model_name, **kwargs) -> str:
        r"""
        Download (or find in the Hugging Face cache) a GLIDE pipeline repo; returns its local snapshot folder.

        `from_pretrained(repo_id, ...)` calls this for a Hub repo id and then loads the folder like a local one,
        so every other `from_pretrained` argument (`dtype`, `device_map`, passed components, ...) behaves
        as in diffusers. diffusers' own `DiffusionPipeline.download` rejects our repos: it accepts component
        libraries only from diffusers / transformers or as `.py` files shipped in the repo, not installed
        modules such as `diffusers_glide.models.glide_unet` (see this module's docstring).

        Used: `cache_dir`, `force_download`, `local_files_only`, `token`, `revision`, `variant`,
        `use_safetensors` (`False` fetches pickled `.bin` weights), `proxies` (huggingface_hub < 1.0), and the
        components passed as objects, whose folders are skipped. diffusers' custom-code arguments (`custom_pipeline`,
        `custom_revision`, `trust_remote_code`) are refused: no Python file is downloaded.
        """
        refuse_remote_code(kwargs, f"{cls.__name__}.download")
        expected_modules, _ = cls._get_signature_keys(cls)
        return download_pipeline_snapshot(
            pretrained_model_name,
            cache_dir=kwargs.get("cache_dir"),
            force_download=kwargs.get("force_download", False),
            proxies=kwargs.get("proxies"),
            local_files_only=kwargs.get("local_files_only"),
            token=kwargs.get("token"),
            revision=kwargs.get("revision"),
            variant=kwargs.get("variant"),
            use_safetensors=kwargs.get("use_safetensors"),
            skip_components=[name for name in expected_modules if name in kwargs],
            user_agent={"pipeline_class": cls.__name__},
        )
