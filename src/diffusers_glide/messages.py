"""Error messages on one line: the command line prints them after `error:`, the web app shows them on the page."""

from __future__ import annotations


def one_line(error: BaseException) -> str:
    """The message of `error` on one line (or its type's name when it has none)."""
    return " ".join(str(error).split()) or type(error).__name__


def cut_short(text: str, limit: int, total: str | None = None) -> str:
    """`text`, or when it is longer than `limit` its first `limit` characters, "..." and " (`total`)" if given (e.g.
    "1000 entries"): a value from a file or a request may be of any size, and a message stays one short line."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}..." + (f" ({total})" if total else "")
