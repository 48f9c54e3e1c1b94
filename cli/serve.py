"""`orderflow serve` and `orderflow worker`: the service in production.

`serve` verifies the ledger, then runs the webhook receiver (Starlette on uvicorn) with the
worker in the same process; `worker` runs the worker alone. SIGTERM drains both: no new
connections, deliveries in flight answered, the worker stopped, the shop closed, exit 0.
The `service` package (and its `serve` extra) is imported only when these commands run,
so the rest of the command line never needs it.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli.runtime import CHOOSE_PROVIDER, JsonOption, emit, fail, session, state, wants_json

if TYPE_CHECKING:
    from ledger import VerifyReport
    from service import Service, Settings

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        metavar="PATH|DSN",
        show_default=False,
        help="The ledger file or postgresql:// DSN (else the root --db, $ORDERFLOW_DB, "
        "./orderflow.db).",
    ),
]
SkipVerify = Annotated[
    bool,
    typer.Option(
        "--skip-verify",
        help="Start without the full verification (the background scrub still checks the "
        "chain). See the README for what it costs on a large ledger.",
    ),
]


def serve_command(
    ctx: typer.Context,
    db: DbOption = None,
    host: Annotated[str, typer.Option("--host", help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="The port (0: any free one).")
    ] = 8000,
    skip_verify: SkipVerify = False,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            min=0.01,
            metavar="SECONDS",
            help="A client that takes longer to send its headers is cut off; "
            "its body, answered 408.",
        ),
    ] = 10.0,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker", help="Receive webhooks only (`orderflow worker` runs elsewhere)."
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Serve webhooks on POST /webhooks/PROVIDER, with /healthz and /metrics, and the worker.

    Verifies the whole ledger first (exit 1 naming the position if the chain is broken).
    Webhook secrets come from $STRIPE_WEBHOOK_SECRET (or $ORDERFLOW_WEBHOOK_SECRET) and
    $SUMUP_WEBHOOK_SECRET; the payment provider as for every command (--provider,
    $ORDERFLOW_PROVIDER or the recorded setting), its keys from the environment.
    SIGTERM drains in-flight deliveries and exits 0.

    Example: orderflow serve --db shop.db --port 8000
    """
    from service import ServiceError, Settings, build_app, sources_from

    settings = Settings(verify=not skip_verify, worker=not no_worker, read_timeout=read_timeout)
    try:
        sources = sources_from(os.environ)
    except ServiceError as exc:  # a provider configured that this build cannot mount
        fail(str(exc), kind=type(exc).__name__)
    if not sources:
        why = "no webhook source configured: set STRIPE_WEBHOOK_SECRET, or SumUp's API keys"
        fail(why, kind="NoSource")
    _logging()
    with _stop_on_signals() as stop, _service(ctx, db, settings, sources) as (service, report):
        if stop.is_set():  # asked to stop while verifying: nothing to drain
            return
        listener = _listen(host, port)
        bound = listener.getsockname()
        _started(ctx, as_json, report, url=f"http://{host}:{bound[1]}")
        _run_uvicorn(build_app(service), listener, settings, stop, service.metrics.cut_off.inc)


def worker_command(
    ctx: typer.Context,
    db: DbOption = None,
    skip_verify: SkipVerify = False,
    as_json: JsonOption = False,
) -> None:
    """Fire due timers, reconcile and scrub the chain, until SIGTERM (then exit 0).

    The worker that `orderflow serve` runs in its own process, alone: run one or several
    beside `serve --no-worker`; processes on one file never fire a timer twice.

    Example: orderflow worker --db shop.db
    """
    from service import Settings

    settings = Settings(verify=not skip_verify, worker=False)
    _logging()
    with _stop_on_signals() as stop, _service(ctx, db, settings, {}) as (service, report):
        _started(ctx, as_json, report, url=None)
        service.run_worker(stop)


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM and SIGINT set the event the command stops on, from the very start (a
    signal during the start-up verification ends it cleanly too, exit 0); the handlers
    found are put back at the end."""
    stop = threading.Event()
    found = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in found.items():
            signal.signal(sig, handler)


@contextmanager
def _service(
    ctx: typer.Context, db: str | None, settings: Settings, sources: dict[str, Any]
) -> Iterator[tuple[Service, VerifyReport | None]]:
    """The shop opened for writing and the service started on it (verified); then closed."""
    from service import Service, ServiceError

    if db is not None:
        state(ctx).db = db
    with session(ctx, pays=True) as shop:
        if shop.provider is None:  # it refunds late payments and reconciles through it
            fail(
                f"no payment provider for the service: {CHOOSE_PROVIDER}", kind="NoPaymentProvider"
            )
        service = Service(shop, sources, settings=settings)
        try:
            report = service.start()
        except ServiceError as exc:
            fail(str(exc), kind=type(exc).__name__)
        try:
            yield service, report
        finally:
            service.close()


def _started(
    ctx: typer.Context, as_json: bool, report: VerifyReport | None, *, url: str | None
) -> None:
    verified = None if report is None else {"events": report.events, "head": list(report.head)}
    if wants_json(ctx, as_json):
        emit({"verified": verified, "listening": url})
    else:
        if report is None:
            typer.echo("start-up verification skipped (--skip-verify): the scrub checks the chain")
        else:
            head = f"{report.head[0]}:{report.head[1]}"
            typer.echo(f"verified {report.events} events, head {head}")
        typer.echo(f"listening on {url}" if url else "worker running")
    sys.stdout.flush()


def _listen(host: str, port: int) -> socket.socket:
    """Bind before serving, so the port (0: any) is known and printed."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns Nagle off only on sockets that say they are TCP, and
    # uvicorn writes a response's head and body apart, so with Nagle on the body waits for
    # the client's delayed ACK (about 40 ms a request on a kept-alive connection).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror}", kind="CannotListen")
    sock.listen(2048)  # a burst of deliveries queues rather than being reset
    return sock


def _run_uvicorn(
    app: Any,
    listener: socket.socket,
    settings: Settings,
    stop: threading.Event,
    on_cut_off: Callable[[], None],
) -> None:
    import uvicorn

    from service import HeaderDeadline

    class Server(uvicorn.Server):
        """uvicorn, also draining on a signal that came before it took the signals over."""

        async def on_tick(self, counter: int) -> bool:
            return stop.is_set() or await super().on_tick(counter)

    config = uvicorn.Config(
        app,
        lifespan="on",
        log_config=None,
        access_log=False,  # the service logs one JSON line per delivery itself
        timeout_graceful_shutdown=int(settings.drain_timeout),
        # h11 with a deadline on the headers: uvicorn has none, and the app's read timeout
        # starts only once they are complete (a slow-loris client would hold the socket).
        http=HeaderDeadline.within(settings.read_timeout, on_cut_off),
        loop="asyncio",
    )
    server = Server(config)
    # uvicorn takes SIGTERM and SIGINT while it serves, drains, then re-raises the signal
    # to the handler it found, `_stop_on_signals`': the drain ends in a clean exit 0.
    server.run(sockets=[listener])
    if not server.started:  # the lifespan start-up failed: uvicorn said why
        raise typer.Exit(3)


def _logging() -> None:
    """JSON lines from the service at INFO on stderr; uvicorn's own at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    logging.getLogger("orderflow.service").setLevel(logging.INFO)
