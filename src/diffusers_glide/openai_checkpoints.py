"""OpenAI's released GLIDE checkpoints, fetched, checked, converted and cached on first use.

    GlidePipeline.from_pretrained(openai_model_path("base"))   # downloads and converts base.pt the first time
    diffusers-glide generate "an oil painting of a corgi" --model openai --upsampler openai

The released files are the ones OpenAI's glide-text2im downloads (`RELEASE_URL` + `base.pt`, `upsample.pt`,
`base_inpaint.pt`, `upsample_inpaint.pt`, `clip_image_enc.pt`, `clip_text_enc.pt`). Each stage is downloaded and
converted once, into the cache ([`cache_dir`]):

    <cache>/openai/downloads/base.pt              the released file, as downloaded (or put there by hand)
    <cache>/openai/downloads/base.pt.json         its size and sha256, recorded the first time it is seen
    <cache>/openai/downloads/base.pt.incomplete   a download that stopped: the next one resumes it (HTTP Range)
    <cache>/openai/base/                          the converted pipeline folder (float32), what `from_pretrained` loads
    <cache>/openai/clip/                          the noised CLIP's folder, for `load_clip_guidance`

OpenAI publishes no checksums: the converter's check of every key and every shape against the architecture is the
proof that a file is the released one. A file that fails it is moved aside as `<name>.pt.corrupt` (never deleted),
and no folder is written. A file with a record is checked against its size and sha256 before it is converted
again. One process at a time downloads and converts a stage (a file lock per stage); the others wait for it and
load its folder. Folders and files appear under their final names only when complete.

Offline (`HF_HUB_OFFLINE=1`, as huggingface_hub reads it) nothing is requested: a missing file is an error that
names it and where to put it by hand. Checkpoints load with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

RELEASE_URL = "https://openaipublic.blob.core.windows.net/diffusion/dec-2021/"
OPENAI = "openai"  # the model name that means these checkpoints (`--model openai`)
CACHE_ENV = "DIFFUSERS_GLIDE_CACHE"  # the cache folder; default: $XDG_CACHE_HOME/diffusers-glide or ~/.cache/...
# For tests only: a server that stands in for OpenAI's, and a folder of the options of the checkpoints it serves
# (`<kind>.options.json`, `clip.config.json`), as the tiny fixture checkpoints need. Unset, the release's own.
URL_ENV = "DIFFUSERS_GLIDE_OPENAI_URL"
OPTIONS_ENV = "DIFFUSERS_GLIDE_OPENAI_OPTIONS"

# stage -> its released files
RELEASED_FILES: dict[str, tuple[str, ...]] = {
    "base": ("base.pt",),
    "upsample": ("upsample.pt",),
    "base-inpaint": ("base_inpaint.pt",),
    "upsample-inpaint": ("upsample_inpaint.pt",),
    "clip": ("clip_image_enc.pt", "clip_text_enc.pt"),
}
OPENAI_MODEL_KINDS: tuple[str, ...] = tuple(RELEASED_FILES)
CHUNK = 1 << 20
CARD_PLACEHOLDER = "path/to/this/folder"  # the model cards' usage examples before a Hub repo id is known
TIMEOUT_SECONDS = 60


class DownloadError(OSError):
    """A released file could not be downloaded (offline, unreachable, an HTTP error, a stopped transfer)."""


class CorruptCheckpointError(ValueError):
    """A downloaded file is not the released checkpoint it should be (it was moved aside)."""


def cache_dir() -> Path:
    """The cache of diffusers-glide: `$DIFFUSERS_GLIDE_CACHE`, else `$XDG_CACHE_HOME/diffusers-glide`, else
    `~/.cache/diffusers-glide` (as huggingface_hub keeps its cache under the user's cache home)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache_home).expanduser() / "diffusers-glide"


def openai_dir() -> Path:
    return cache_dir() / OPENAI


def release_url() -> str:
    url = os.environ.get(URL_ENV) or RELEASE_URL
    return url if url.endswith("/") else url + "/"


def is_offline() -> bool:
    """huggingface_hub's offline switch, read when called (HF_HUB_OFFLINE=1, ON, YES or TRUE)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def _check_kind(kind: str) -> None:
    if kind not in RELEASED_FILES:
        raise ValueError(f"Unknown OpenAI GLIDE model {kind!r}; the release has {', '.join(OPENAI_MODEL_KINDS)}.")


def converted_folder(kind: str) -> Path:
    """Where the converted folder of stage `kind` lives in the cache (it may not exist yet)."""
    _check_kind(kind)
    return openai_dir() / kind


def _is_converted(kind: str) -> bool:
    marker = "clip_image_encoder/config.json" if kind == "clip" else "model_index.json"
    return (converted_folder(kind) / marker).is_file()


def openai_model_path(kind: str = "base", progress: bool = True) -> str:
    """
    The converted folder of OpenAI's released GLIDE `kind` ("base", "upsample", "base-inpaint", "upsample-inpaint"
    or "clip"), downloaded and converted into the cache the first time (a few GB: see docs/conversion.md), and
    loaded from it at once afterwards. Load it with its pipeline's `from_pretrained` (the CLIP with
    `GlidePipeline.load_clip_guidance`). `progress=False` hides the download's byte progress bar.
    """
    _check_kind(kind)
    if _is_converted(kind):
        return str(converted_folder(kind))
    for name in RELEASED_FILES[kind]:  # offline: the error before anything (even a lock file) is written
        _check_not_offline(name)
    from filelock import FileLock

    locks = openai_dir() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(locks / f"{kind}.lock"):
        if not _is_converted(kind):  # another process may have made it while this one waited
            files = [download_released_file(name, progress) for name in RELEASED_FILES[kind]]
            _convert(kind, files)
    return str(converted_folder(kind))


def download_openai_models(kinds: Iterable[str] = OPENAI_MODEL_KINDS, progress: bool = True) -> list[str]:
    """Fetch and convert the stages `kinds` ahead of time (e.g. before a machine goes offline); their folders."""
    return [openai_model_path(kind, progress) for kind in kinds]


def push_openai_model(kind: str, repo_id: str, private: bool = False, token: str | None = None) -> None:
    """Upload the converted stage `kind` from the cache (converting it first if needed) to the Hub repo `repo_id`,
    its card's usage example naming the repo. The cache folder itself is left as it is."""
    import shutil
    import tempfile

    from .conversion import push_folder_to_hub

    folder = Path(openai_model_path(kind))
    with tempfile.TemporaryDirectory(prefix=".push-", dir=openai_dir()) as staging:
        copy = Path(staging) / kind
        shutil.copytree(folder, copy, copy_function=_link_or_copy)  # links: no second copy of the weights
        card = copy / "README.md"
        text = card.read_text(encoding="utf-8")
        card.unlink()  # a link to the cache's card: write a new file instead
        card.write_text(text.replace(f'"{CARD_PLACEHOLDER}"', f'"{repo_id}"'), encoding="utf-8")
        push_folder_to_hub(copy, repo_id, private=private, token=token)


def _link_or_copy(source: str, destination: str) -> None:
    import shutil

    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


# ---------------------------------------------------------------------------------------------------------------
# Downloading


def download_released_file(name: str, progress: bool = True) -> Path:
    """The released file `name` (e.g. "base.pt") in the cache: downloaded when missing, resumed when a download
    stopped; checked against its recorded size and sha256 when it was seen before. Callers hold the stage's lock."""
    target = openai_dir() / "downloads" / name
    if target.is_file():
        _check_record(target)
        return target
    _check_not_offline(name)
    url = release_url() + name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(name + ".incomplete")
    _fetch(url, partial, name, progress)
    _write_record(partial, target)
    os.replace(partial, target)
    return target


def _check_not_offline(name: str) -> None:
    """In offline mode, a released file missing from the cache is an error naming where to put it."""
    target = openai_dir() / "downloads" / name
    if is_offline() and not target.is_file():
        raise DownloadError(
            f"OpenAI's {name} is not in the cache and HF_HUB_OFFLINE is set, so it was not downloaded: fetch "
            f"{release_url() + name} elsewhere and put it at {target}. Nothing was written."
        )


def _fetch(url: str, partial: Path, name: str, progress: bool) -> None:
    """Download `url` into `partial`, continuing it when it already holds the start of the file."""
    import http.client
    import urllib.error
    import urllib.request

    from tqdm.auto import tqdm

    start = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # the partial file is not a prefix of this one: start again
            partial.unlink()
            return _fetch(url, partial, name, progress)
        kept = f" The partial download {partial} is kept." if start else " Nothing was written."
        raise DownloadError(
            f"Downloading OpenAI's {name}: {url} answered {error.code} {error.reason}.{kept}"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(
            f"Cannot download OpenAI's {name} from {url} ({reason}): check the network, or fetch the file elsewhere "
            f"and put it at {partial.with_name(name)}. Nothing was written."
        ) from None
    with response:
        if response.status == 206:
            first, total = _content_range(response.headers.get("Content-Range"))
            if first != start:
                raise DownloadError(f"Downloading OpenAI's {name}: {url} resumed at byte {first}, not {start}.")
            mode = "ab"
        else:
            start, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None and length.isdigit() else None
        received = start
        with (
            open(partial, mode) as file,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=name,
                disable=not progress,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                raise DownloadError(
                    f"The download of OpenAI's {name} stopped at byte {received:,} of {_of(total)} ({error!r}); run "
                    "the command again to resume it."
                ) from None
    if total is not None and received != total:
        raise DownloadError(
            f"The download of OpenAI's {name} stopped at byte {received:,} of {_of(total)}; run the command again to "
            "resume it."
        )
    return None


def _of(total: int | None) -> str:
    return "an unknown size" if total is None else f"{total:,}"


def _content_range(value: str | None) -> tuple[int, int | None]:
    """(first byte, total size) of a `Content-Range: bytes first-last/total` header."""
    try:
        unit, _, rest = value.partition(" ")
        span, _, total = rest.partition("/")
        first = int(span.partition("-")[0])
        if unit != "bytes":
            raise ValueError
        return first, None if total == "*" else int(total)
    except (AttributeError, ValueError):
        raise DownloadError(f"A resumed download answered with the Content-Range {value!r}.") from None


# ---------------------------------------------------------------------------------------------------------------
# The record of each file: its size and sha256, checked before each conversion


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_record(data: Path, target: Path) -> None:
    """Record the size and sha256 of `data` (to become `target`) beside `target`, written whole or not at all."""
    record = {"file": target.name, "bytes": data.stat().st_size, "sha256": _sha256(data)}
    temporary = _record_path(target).with_suffix(".json.tmp")
    temporary.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(temporary, _record_path(target))


def _check_record(target: Path) -> None:
    """A cached file matches its record; a file put there by hand gets one (the conversion then checks it)."""
    path = _record_path(target)
    if not path.is_file():
        _write_record(target, target)
        return
    try:
        record = json.loads(path.read_text())
        expected = int(record["bytes"]), str(record["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"The record {path} of {target.name} cannot be read ({error}): remove it to record the file anew."
        ) from None
    size = target.stat().st_size
    if size != expected[0] or _sha256(target) != expected[1]:
        raise ValueError(
            f"{target} changed since it was recorded ({path}: {expected[0]:,} bytes, sha256 {expected[1][:12]}..., now "
            f"{size:,} bytes): remove both files to download it again."
        )


# ---------------------------------------------------------------------------------------------------------------
# Converting


def _options(kind: str) -> dict | None:
    """The options of the checkpoints of `kind`: the release's (None: the converter's defaults), or those of the
    test server's checkpoints."""
    folder = os.environ.get(OPTIONS_ENV)
    if not folder:
        return None
    name = "clip.config.json" if kind == "clip" else f"{kind}.options.json"
    return json.loads((Path(folder) / name).read_text())


def _convert(kind: str, files: list[Path]) -> None:
    """Convert the downloaded `files` of `kind` into its cache folder (written whole or not at all). A file the
    converter refuses is moved aside as `<name>.corrupt`, and the error names it."""
    from .conversion import convert_clip_checkpoints, convert_glide_checkpoint, write_pipeline_folder

    try:  # the shipped vocabularies; the model cards name the released files
        if kind == "clip":
            converted = convert_clip_checkpoints(files, options=_options(kind), released=True)
        else:
            released_name = files[0].name.removesuffix(".pt")
            converted = convert_glide_checkpoint(files[0], kind, options=_options(kind), released_name=released_name)
    except ValueError as error:  # the converter's errors: unreadable, keys or shapes off the architecture
        moved = []
        for file in files:
            aside = file.with_name(file.name + ".corrupt")
            os.replace(file, aside)
            _record_path(file).unlink(missing_ok=True)
            moved.append(str(aside))
        raise CorruptCheckpointError(
            f"OpenAI's {' and '.join(file.name for file in files)} in the cache is not the released {kind} checkpoint "
            f"({error}). Moved it aside as {', '.join(moved)}; run again to download it anew. No folder was written."
        ) from error
    write_pipeline_folder(converted, converted_folder(kind), "float32")
