"""A stand-in for OpenAI's download server on 127.0.0.1: it serves the tiny fixture checkpoints under the released
file names, answers HTTP Range requests as the real blob store does, counts every request, and can misbehave on
purpose (an HTTP error, a connection dropped halfway, a truncated or a wrong file)."""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import REFERENCE_DIR

# released name -> the fixture checkpoint served under it
FIXTURE_FILES = {
    "base.pt": "base.pt",
    "upsample.pt": "upsample.pt",
    "base_inpaint.pt": "base-inpaint.pt",
    "upsample_inpaint.pt": "upsample-inpaint.pt",
    "clip_image_enc.pt": "clip_image_enc.pt",
    "clip_text_enc.pt": "clip_text_enc.pt",
}
PREFIX = "/diffusion/dec-2021/"


class ReleaseServer:
    """`with ReleaseServer() as server:` serves at `server.url`; `server.hits` lists (file name, Range header)."""

    def __init__(self, delay: float = 0.0):
        self.files = {name: (REFERENCE_DIR / fixture).read_bytes() for name, fixture in FIXTURE_FILES.items()}
        self.hits: list[tuple[str, str | None]] = []
        self.status: dict[str, int] = {}  # name -> an HTTP error status to answer with
        self.drop_once: set[str] = set()  # names whose next answer stops halfway through the body
        self.delay = delay  # seconds before each answer, so that concurrent clients overlap
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                server._answer(self)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}{PREFIX}"

    def __enter__(self) -> ReleaseServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()

    def requests_for(self, name: str) -> list[str | None]:
        """The Range headers of the requests for `name` (None: the whole file)."""
        return [range_ for hit, range_ in self.hits if hit == name]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        name = handler.path.removeprefix(PREFIX)
        range_ = handler.headers.get("Range")
        with self._lock:
            self.hits.append((name, range_))
            drop = name in self.drop_once
            self.drop_once.discard(name)
        time.sleep(self.delay)
        if name in self.status:
            handler.send_error(self.status[name])
            return
        if name not in self.files:
            handler.send_error(404)
            return
        data = self.files[name]
        first = 0
        if range_ is not None:
            match = re.fullmatch(r"bytes=(\d+)-", range_)
            first = int(match[1]) if match else len(data)
            if first >= len(data):
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(data)}")
                handler.end_headers()
                return
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[first:]
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if drop:  # the body stops halfway and the connection closes
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(body)
