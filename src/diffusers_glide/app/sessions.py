"""Which browser sessions have left: a request whose page was reloaded or closed stops at its next denoising step.

Gradio signals a client that left in two ways, both within ~0.1 s of a reload in headless Chromium (Gradio 6.31):

- the page's heartbeat connection closes and Gradio runs the app's `unload` listeners with that session's
  `gr.Request` (public API): `SessionWatch.close`, registered by `build_app`, remembers the session as gone;
- the queue's event stream of the session closes and Gradio marks its running event not alive
  (`Event.alive`, internal): this one also covers API clients, which hold no heartbeat connection.

`gr.Request.is_disconnected()` is no help for a queued event: it asks about the `/queue/join` POST that queued the
request, which has already been answered, so it is true from the first step on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import gradio as gr

REMEMBERED_SESSIONS = 4096  # sessions that left, remembered in case one of their requests is still queued


class SessionWatch:
    """The browser sessions that have left (a session hash is new at every page load, so one that left never comes
    back), and a per-request check of whether the request's client is gone."""

    def __init__(self, remembered: int = REMEMBERED_SESSIONS):
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._remembered = remembered
        self._lock = threading.Lock()

    def close(self, request: gr.Request = None) -> None:
        """The `unload` listener: the session of `request` left its page."""
        session = getattr(request, "session_hash", None)
        if session is None:
            return
        with self._lock:
            self._gone[session] = None
            while len(self._gone) > self._remembered:
                self._gone.popitem(last=False)

    def is_gone(self, session: str | None) -> bool:
        return session is not None and session in self._gone

    def watch(self, request: gr.Request | None) -> Callable[[], bool]:
        """A check, cheap enough for every denoising step, that the client of `request` has left. Call it from the
        handler's thread: it looks up the queue event that Gradio is running there."""
        session = getattr(request, "session_hash", None)
        event = _running_queue_event()

        def gone() -> bool:
            return (event is not None and not getattr(event, "alive", True)) or self.is_gone(session)

        return gone


def _running_queue_event():
    """Gradio's queue event of the request this thread runs, None outside a queued request (a direct call, a test)
    or where Gradio's internals differ: then only the `unload` signal counts."""
    try:
        from gradio.context import LocalContext

        event_id = LocalContext.event_id.get(None)
        blocks = LocalContext.blocks.get(None)
        events = blocks._queue.event_ids_to_events
    except (ImportError, AttributeError):
        return None
    return events.get(event_id) if event_id is not None else None
