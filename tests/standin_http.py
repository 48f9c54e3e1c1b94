"""What the providers' local stand-ins share: a threaded HTTP server on 127.0.0.1 that
hands every request to one function and writes the answer it gives back."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Respond = Callable[[str, str, bytes, dict[str, str]], tuple[int, bytes | None]]
"""(method, path, raw body, lower-cased headers) -> (status, JSON body or None for none)."""


class LocalServer:
    """`respond` served on a free port of 127.0.0.1, in daemon threads."""

    def __init__(self, respond: Respond) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(respond))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        """The base URL a provider client is given (`base_url=`)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(respond: Respond) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out = respond(method, self.path, raw, headers)
            try:
                self.send_response(status)
                if out is not None:
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out or b"")
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler
