"""Shared kit for the service tests: a stocked ledger file, `orderflow serve` as a real
subprocess on 127.0.0.1, signed deliveries and a plain HTTP client.

Named `service_helpers` so it cannot shadow another test folder's helpers on `sys.path`.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import msgspec

from commerce import FakeProvider, Money, PaymentIntent, Shop, ShopConfig, sign
from commerce.events import AnyCommerceEvent

SECRET = "whsec_service_tests"
BIN = Path(sys.executable).parent / "orderflow"
LOAD = int(os.environ.get("SERVICE_LOAD", "120"))
"""Orders per load test (SIGTERM and SIGKILL in the middle of load); raise it for a long run."""
_decode = msgspec.json.Decoder(AnyCommerceEvent).decode


def stocked(
    db: Path | str, orders: int, *, timeout: int | None = None, first: int = 0
) -> list[str]:
    """A shop file with MUG in stock and `orders` orders awaiting payment (`o<n>`)."""
    with Shop.open(db, provider=FakeProvider()) as shop:
        if not shop.products():
            shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=100_000)
        if timeout is not None:
            shop.configure(ShopConfig(payment_timeout_seconds=timeout))
        ids = [f"o{n}" for n in range(first, first + orders)]
        for order_id in ids:
            shop.start_order([("MUG", 1)], order_id=order_id)
    return ids


def intent(shop: Shop, order_id: str) -> PaymentIntent:
    """The order's intent as the fake provider made it."""
    row = shop.order(order_id).order
    assert row.intent_id is not None
    return PaymentIntent(
        intent_id=row.intent_id, order_id=order_id, amount=row.total, currency=row.currency
    )


def payments(db: Path | str, order_ids: list[str]) -> dict[str, bytes]:
    """A `payment_intent.succeeded` body per order, event id `evt_<order>`."""
    with Shop.open(db, readonly=True) as shop:
        return {
            order_id: FakeProvider.event_for(
                intent(shop, order_id),
                "payment_intent.succeeded",
                event_id=f"evt_{order_id}",
                created=int(time.time()),
            )
            for order_id in order_ids
        }


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    """The `Stripe-Signature` header for `body`, signed now."""
    return {"Stripe-Signature": sign(body, secret, int(time.time()))}


def events(db: Path | str, type_name: str) -> list[Any]:
    """Every commerce event of `type_name` in the file."""
    with Shop.open(db, readonly=True) as shop:
        return [
            _decode(record.data) for record in shop.ledger.read_all() if record.type == type_name
        ]


def received(db: Path | str) -> Counter[str]:
    """How many times each webhook event id is recorded in the ledger."""
    return Counter(event.event_id for event in events(db, "WebhookReceived"))


def fulfilled(db: Path | str) -> Counter[str]:
    """How many times each order was fulfilled."""
    return Counter(event.order_id for event in events(db, "OrderFulfilled"))


def env(**extra: str) -> dict[str, str]:
    """The environment of a served shop: the Stripe secret and the fake provider."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "ORDERFLOW_"))}
    return {**base, "STRIPE_WEBHOOK_SECRET": SECRET, "ORDERFLOW_PROVIDER": "fake", **extra}


class Server:
    """`orderflow serve` on a free port of 127.0.0.1, its logs in a file beside the ledger.

    On a PostgreSQL DSN (`db` a str), the logs go in the folder `logs`.
    """

    def __init__(
        self,
        db: Path | str,
        *args: str,
        environ: dict[str, str] | None = None,
        logs: Path | None = None,
    ) -> None:
        self.db = db
        stamp = time.monotonic_ns()
        self.log = logs / f"serve.{stamp}.log" if logs else Path(db).with_suffix(f".{stamp}.log")
        with self.log.open("wb") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                [str(BIN), "serve", "--db", str(db), "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                env=environ or env(),
                text=True,
            )
        self.port = self._port()

    def _port(self) -> int:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("listening on "):
                return int(line.rsplit(":", 1)[1])
        code = self.process.wait(timeout=60)
        raise AssertionError(f"serve exited {code} before listening:\n{self.logs()}")

    def logs(self) -> str:
        """What the server wrote on stderr so far."""
        return self.log.read_text()

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines (one per delivery, plus start and stop)."""
        out = []
        for text in self.logs().splitlines():
            if text.startswith("{"):
                out.append(json.loads(text))
        return out

    def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], Any]:
        """POST and read the answer (JSON decoded when it is JSON)."""
        return request(self.port, "POST", path, body, headers or {})

    def get(self, path: str) -> tuple[int, dict[str, str], Any]:
        """GET and read the answer."""
        return request(self.port, "GET", path, None, {})

    def stop(self, sig: int | None = signal.SIGTERM) -> int:
        """Send `sig` (None: it was sent already) and wait for the exit code."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=120)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return code


def request(
    port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, str], Any]:
    """One request on a new connection; the status, headers and (decoded) body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        data = response.read()
        found = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    if found.get("content-type", "").startswith("application/json"):
        return response.status, found, json.loads(data)
    return response.status, found, data.decode()


def raw_exchange(port: int, head: bytes, parts: list[bytes]) -> bytes:
    """Send `head` then each of `parts` on a raw socket (stopping if the server closes),
    then read until the server closes the connection; what it answered."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        sock.sendall(head)
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def closed_within(sock: socket.socket, trickle: bytes, within: float) -> float | None:
    """Send `trickle` a byte at a time, one more each time the server stays quiet for a
    tenth of a second (a slow-loris client), until the server closes the connection or
    `within` seconds pass; the seconds it took the server to close, or None."""
    started = time.monotonic()
    sock.settimeout(0.1)
    sent = 0
    while time.monotonic() - started < within:
        try:
            if sock.recv(1) == b"":
                return time.monotonic() - started
            raise AssertionError("the server answered a request it has not received")
        except TimeoutError:  # quiet: send the next byte
            if sent < len(trickle):
                try:
                    sock.sendall(trickle[sent : sent + 1])
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - started
                sent += 1
        except ConnectionResetError:
            return time.monotonic() - started
    return None


@contextmanager
def wsgi_server(app: object, *, read_timeout: float | None = None) -> Iterator[int]:
    """A real wsgiref server on 127.0.0.1 in a thread; yields its port."""

    class Quiet(WSGIRequestHandler):
        timeout = read_timeout

        def log_message(self, format: str, *args: object) -> None:
            pass

    server: WSGIServer = make_server("127.0.0.1", 0, app, handler_class=Quiet)  # type: ignore[arg-type]
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
