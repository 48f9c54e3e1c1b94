"""The ASGI application (Starlette): the service's routes over `Service`.

Reading stops at the body cap: a declared length past it is refused before a byte is
read, and a chunked body is read only until it passes the cap. A client that does not
finish its body within the read timeout is answered 408 and its connection closed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from commerce import WebhookSource
from service import answers
from service.answers import Answer
from service.runtime import Service, ShopSource
from service.settings import Settings


def create_app(
    shop: ShopSource,
    sources: Mapping[str, WebhookSource],
    *,
    settings: Settings | None = None,
) -> Starlette:
    """`POST /webhooks/{provider}`, `GET /healthz`, `GET /metrics`, with the worker in its lifespan.

    `shop` is a `Shop` (you close it) or a function that opens one (opened at start-up, in
    the serving process, and closed at shutdown). Mounted inside another app, pass this
    app's `router.lifespan_context` as that app's lifespan so the worker runs.
    """
    return build_app(Service(shop, sources, settings=settings))


def build_app(service: Service) -> Starlette:
    """The Starlette app over an existing `Service` (its state is `app.state.service`)."""

    # Settles queue on one write lock anyway: a few threads keep it busy, and more (anyio's
    # default is 40) only fight over it and the GIL (p99 at 32 clients 395 ms -> ~160 ms).
    settling = anyio.CapacityLimiter(service.settings.settle_threads)

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        try:
            yield
        finally:  # uvicorn gets here after the in-flight requests finished
            await run_in_threadpool(service.close)

    async def webhook(request: Request) -> Response:
        provider = request.path_params["provider"]
        early = service.before_body(provider, request.headers.get("content-length"))
        if early is not None:
            return _response(early)
        body = await _read(request, service, provider)
        if isinstance(body, Answer):
            return _response(body)
        headers = dict(request.headers)
        with service.answering():  # waiting for a settling thread counts as queued
            answer = await anyio.to_thread.run_sync(
                service.deliver, provider, body, headers, limiter=settling
            )
        return _response(answer)

    async def healthz(_request: Request) -> Response:
        return _response(await run_in_threadpool(service.health_answer))

    async def metrics(_request: Request) -> Response:
        return _response(await run_in_threadpool(service.metrics_answer))

    app = Starlette(
        routes=[
            Route("/webhooks/{provider}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.service = service
    return app


async def _read(request: Request, service: Service, provider: str) -> bytes | Answer:
    """The body, or the answer that refuses it (413 past the cap, 408 too slow)."""
    limit = service.limit
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(service.settings.read_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:  # stop here: the rest is never read
                    return service.too_large(provider, size, at_least=True)
                chunks.append(chunk)
    except TimeoutError:
        return service.timed_out(provider)
    except ClientDisconnect:
        return service.refused(provider, answers.error(400, "disconnected", "client went away"))
    return b"".join(chunks)


def _response(answer: Answer) -> Response:
    return Response(
        content=answer.body,
        status_code=answer.status,
        headers=dict(answer.headers),
        media_type=answer.content_type,
    )
