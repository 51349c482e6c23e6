"""How the web app is served: safe defaults (this machine only, no share link, an upload limit)."""

import re
from pathlib import Path

from .interface import CSS, HEAD

DEFAULT_HOST = "127.0.0.1"  # this machine only; `--host 0.0.0.0` serves the network
DEFAULT_PORT = 7860  # Gradio's
DEFAULT_MAX_FILE_SIZE = "10mb"
_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3}
_UPLOAD_GUARD = Path(__file__).with_name("upload_guard.js")


def file_size_bytes(size: str | int) -> int:
    """`10mb`, `512 KB`, `2000000` -> bytes (Gradio's units: 1 kb = 1000 bytes)."""
    if isinstance(size, int) and not isinstance(size, bool):
        number, unit = size, "b"
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?b)?\s*", str(size).lower())
        if match is None:
            raise ValueError(f"Cannot read the file size {size!r}: write it like 10mb, 512kb or 2000000 (bytes).")
        number, unit = float(match.group(1)), match.group(2) or "b"
    if number <= 0:
        raise ValueError(f"The upload limit must be positive, got {size!r}.")
    return int(number * _UNITS[unit])


def upload_guard_js(max_file_size: str | int) -> str:
    """The page's script that refuses uploads over `max_file_size` with a message in the page."""
    limit = file_size_bytes(max_file_size)
    text = f"{limit / 1000**2:g} MB" if limit >= 1000**2 else f"{limit / 1000:g} kB"
    return _UPLOAD_GUARD.read_text().replace("__LIMIT_BYTES__", str(limit)).replace("__LIMIT_TEXT__", text)


def launch_options(
    host: str = DEFAULT_HOST,
    port: int | None = DEFAULT_PORT,
    share: bool = False,
    max_file_size: str | int = DEFAULT_MAX_FILE_SIZE,
) -> dict:
    """
    The keyword arguments of `gradio.Blocks.launch` for the app: bound to `host` (this machine only by default),
    no public share link unless `share`, uploads capped at `max_file_size` (the server answers larger ones with HTTP
    413, the page says why), no folder of this machine served besides Gradio's own cache (no `allowed_paths`), the
    page's CSS and script.
    """
    return {
        "server_name": host,
        "server_port": port,
        "share": share,
        "max_file_size": file_size_bytes(max_file_size),
        "css": CSS,
        "js": upload_guard_js(max_file_size),
        "head": HEAD,
        "footer_links": ["gradio"],
    }
