"""The WSGI callable (Flask, Django, any WSGI server): the same routes over `Service`.

Only the byte-moving is WSGI's own: reading `wsgi.input` up to the cap. What a delivery is
answered with is decided by `Service.deliver`, as for the ASGI app. The read timeout is
the server's (wsgiref: `WSGIRequestHandler.timeout`; gunicorn: `--timeout`); a read that
times out is answered 408.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from wsgiref.util import is_hop_by_hop

from commerce import WebhookSource
from service import answers
from service.answers import Answer
from service.runtime import Service, ShopSource
from service.settings import Settings

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
CHUNK = 64 * 1024
PREFIX = "/webhooks/"


class WSGIApp:
    """`POST /webhooks/<provider>`, `GET /healthz`, `GET /metrics` as a WSGI application.

    The service starts (verifies the ledger, starts the worker) on `start()` or on the
    first request, in the process that serves: call `start()` after a pre-forking server
    forks, and `close()` when the server stops.
    """

    def __init__(self, service: Service) -> None:
        self.service = service

    def start(self) -> None:
        """Open and verify the ledger and start the worker (idempotent)."""
        self.service.start()

    def close(self) -> None:
        """Stop the worker, wait for deliveries in flight, close the shop if it was opened here."""
        self.service.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        answer = self._route(environ)
        status = f"{answer.status} {HTTPStatus(answer.status).phrase}"
        # PEP 3333 leaves `Connection` to the server: after a 413 or 408 it closes anyway.
        headers = [(k, v) for k, v in answer.all_headers() if not is_hop_by_hop(k)]
        start_response(status, headers)
        return [answer.body]

    def _route(self, environ: dict[str, Any]) -> Answer:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        service = self.service
        if path.startswith(PREFIX) and "/" not in path[len(PREFIX) :] and path != PREFIX:
            if method != "POST":
                return answers.error(405, "method", "use POST")
            return self._webhook(path[len(PREFIX) :], environ)
        if path in ("/healthz", "/metrics"):
            if method != "GET":
                return answers.error(405, "method", "use GET")
            return service.health_answer() if path == "/healthz" else service.metrics_answer()
        return answers.error(404, "not_found", f"no route {path[:60]!r}")

    def _webhook(self, provider: str, environ: dict[str, Any]) -> Answer:
        service = self.service
        early = service.before_body(provider, environ.get("CONTENT_LENGTH"))
        if early is not None:
            return early
        body = _read(environ, service, provider)
        if isinstance(body, Answer):
            return body
        with service.answering():
            return service.deliver(provider, body, _headers(environ))


def create_wsgi_app(
    shop: ShopSource, sources: Mapping[str, WebhookSource], *, settings: Settings | None = None
) -> WSGIApp:
    """The WSGI callable for `shop` (a `Shop`, or a function that opens one) and `sources`."""
    return WSGIApp(Service(shop, sources, settings=settings))


def _read(environ: dict[str, Any], service: Service, provider: str) -> bytes | Answer:
    """The body, or the answer that refuses it; never reads past the cap plus one chunk."""
    limit = service.limit
    declared = str(environ.get("CONTENT_LENGTH") or "").strip()
    if declared.isdigit():  # at most the cap: `before_body` refused more
        wanted = int(declared)
    elif environ.get("wsgi.input_terminated"):  # the server ends the stream itself (chunked)
        wanted = limit + 1
    else:
        wanted = 0  # PEP 3333: without a length, reading may block forever
    stream, chunks, size = environ["wsgi.input"], [], 0
    try:
        while size < wanted:
            chunk = stream.read(min(CHUNK, wanted - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except TimeoutError:
        return service.timed_out(provider)
    if size > limit:
        return service.too_large(provider, size, at_least=True)
    return b"".join(chunks)


def _headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """The request's headers from the environ (`HTTP_STRIPE_SIGNATURE`: `Stripe-Signature`)."""
    found = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            found[key.replace("_", "-").title()] = str(environ[key])
    return found
