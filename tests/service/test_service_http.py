"""`orderflow serve` over real HTTP: the answer contract, the body cap, the probes.

One server (a subprocess on 127.0.0.1) serves a ledger file of orders awaiting payment;
each test pays its own orders.
"""

from __future__ import annotations

import http.client
import itertools
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from service_helpers import (
    BIN,
    SECRET,
    Server,
    closed_within,
    fulfilled,
    payments,
    raw_exchange,
    received,
    signed,
    stocked,
)
from test_fixtures_settle import EVENTS, HERE, pointed

from commerce import MAX_BODY, FakeProvider, Money, Shop, sign

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
ORDERS = 160
READ_TIMEOUT = 2.0
_next = itertools.count()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    db = tmp_path_factory.mktemp("served") / "shop.db"
    stocked(db, ORDERS)
    server = Server(db, "--read-timeout", str(READ_TIMEOUT))
    yield server
    assert server.stop() == 0, server.logs()


def fresh(served: Server) -> list[str]:
    """An order no other test has paid."""
    return [f"o{next(_next)}"]


def head(db: Path) -> tuple[tuple[int, str], int]:
    with Shop.open(db, readonly=True) as shop:
        return shop.ledger.head(), shop.ledger.count()


def test_a_payment_settles_and_its_duplicate_is_already_settled(served: Server) -> None:
    (order,) = fresh(served)
    body = payments(served.db, [order])[order]
    status, headers, answer = served.post("/webhooks/stripe", body, signed(body))
    assert status == 200 and headers["content-type"] == "application/json"
    assert answer == {
        "outcome": "settled",
        "event_id": f"evt_{order}",
        "reason": "paid; order fulfilled",
        "order_id": order,
        "order_status": "fulfilled",
    }
    status, _, again = served.post("/webhooks/stripe", body, signed(body))
    assert (status, again["outcome"], again["order_id"]) == (200, "already_settled", order)
    assert fulfilled(served.db)[order] == 1
    logged = [line for line in served.lines() if line.get("event_id") == f"evt_{order}"]
    assert [(x["order"], x["outcome"], x["status"]) for x in logged] == [
        (order, "settled", 200),
        (order, "already_settled", 200),
    ]
    assert all(isinstance(x["ms"], float | int) for x in logged)


def test_64_concurrent_duplicates_settle_exactly_once(served: Server) -> None:
    (order,) = fresh(served)
    body = payments(served.db, [order])[order]
    headers = signed(body)
    start = threading.Barrier(64)

    def deliver(_: int) -> tuple[int, str]:
        start.wait()
        status, _, answer = served.post("/webhooks/stripe", body, headers)
        return status, answer["outcome"]

    with ThreadPoolExecutor(64) as clients:
        answers = list(clients.map(deliver, range(64)))
    assert Counter(answers) == {(200, "settled"): 1, (200, "already_settled"): 63}
    assert fulfilled(served.db)[order] == 1
    assert received(served.db)[f"evt_{order}"] == 1


def test_concurrent_deliveries_share_write_transactions(served: Server) -> None:
    """Group commit: 32 payments for 32 orders at once, each answered settled, in fewer
    commits than deliveries (the metrics count the write transactions)."""
    orders = [order for _ in range(32) for order in fresh(served)]
    bodies = payments(served.db, orders)
    before = _metric(served, "orderflow_settle_batches_total")
    start = threading.Barrier(len(orders))

    def deliver(order: str) -> tuple[int, str]:
        start.wait()
        status, _, answer = served.post("/webhooks/stripe", bodies[order], signed(bodies[order]))
        return status, answer["outcome"]

    with ThreadPoolExecutor(len(orders)) as clients:
        answers = list(clients.map(deliver, orders))
    assert answers == [(200, "settled")] * len(orders)
    assert all(fulfilled(served.db)[order] == 1 for order in orders)
    assert _metric(served, "orderflow_settle_batches_total") - before < len(orders)
    assert _metric(served, "orderflow_settle_batch_largest") > 1


def _metric(served: Server, name: str) -> float:
    _, _, text = served.get("/metrics")
    (value,) = [line.split()[1] for line in str(text).splitlines() if line.startswith(name + " ")]
    return float(value)


def test_bad_signatures_are_400_and_write_nothing(served: Server) -> None:
    (order,) = fresh(served)
    body = payments(served.db, [order])[order]
    before = head(served.db)
    cases = {
        "forged": signed(body, "whsec_forged"),
        "missing": {},
        "garbled": {"Stripe-Signature": "v1"},
        "expired": {"Stripe-Signature": sign(body, SECRET, 1_000_000)},
    }
    for name, headers in cases.items():
        status, _, answer = served.post("/webhooks/stripe", body, headers)
        assert status == 400, (name, answer)
        assert set(answer) == {"error", "kind"} and "signature" in answer["error"], answer
    status, _, answer = served.post("/webhooks/stripe", body + b" ", signed(body))
    assert (status, answer["kind"]) == (400, "SignatureMismatch")
    assert head(served.db) == before


def test_an_authentic_body_that_is_not_an_event_is_400(served: Server) -> None:
    body = b'{"id": "evt_x", "id": "evt_y"}'
    before = head(served.db)
    status, _, answer = served.post("/webhooks/stripe", body, signed(body))
    assert (status, answer["kind"]) == (400, "MalformedEvent")
    assert head(served.db) == before


def test_a_declared_body_past_the_cap_is_413_before_any_of_it_is_read(served: Server) -> None:
    request = (
        "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {MAX_BODY + 1}\r\nStripe-Signature: t=1,v1=00\r\n\r\n"
    ).encode()
    answer = raw_exchange(served.port, request, [])  # the body is never sent: no need
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"over the 1048576-byte limit" in answer


def test_a_chunked_body_is_read_only_until_it_passes_the_cap(served: Server) -> None:
    request = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"x" * 65536
    chunks = [b"%x\r\n%s\r\n" % (len(piece), piece)] * (MAX_BODY // len(piece) + 4)
    answer = raw_exchange(served.port, request, chunks)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"at least" in answer


def test_a_slow_body_is_cut_off_by_the_read_timeout(served: Server) -> None:
    request = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{"
    answer = raw_exchange(served.port, request, [])  # 499 bytes never come
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"did not arrive within 2 s" in answer


@pytest.mark.parametrize("client", ["silent", "half a request line", "trickling", "kept alive"])
def test_a_client_slow_to_send_its_headers_is_cut_off_and_nothing_recorded(
    served: Server, client: str
) -> None:
    """Slow-loris: the headers must be complete within the read timeout of the connection
    opening (or of the last answer on a kept-alive one), however the bytes trickle in."""
    (order,) = fresh(served)
    body = payments(served.db, [order])[order]
    signature = signed(body)["Stripe-Signature"]
    start = (
        "POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(body)}\r\nStripe-Signature: {signature}\r\n"
    ).encode()
    before, logged, cut = head(served.db), len(served.lines()), _cut_off(served)
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
    try:
        if client == "kept alive":  # one whole exchange first, then the next request trickles
            conn.request("GET", "/healthz")
            assert conn.getresponse().read()
        else:
            conn.connect()
        sock = conn.sock
        assert isinstance(sock, socket.socket)
        first, trickle = {
            "silent": (b"", b""),
            "half a request line": (b"POST /webhooks/str", b""),
            "trickling": (start, b"X-Slow: " + b"a" * 1000),
            "kept alive": (b"", start + b"X-Slow: " + b"a" * 1000),
        }[client]
        sock.sendall(first)
        seconds = closed_within(sock, trickle, within=5 * READ_TIMEOUT)
    finally:
        conn.close()
    assert seconds is not None, "the server kept the connection open"
    assert READ_TIMEOUT / 2 <= seconds <= 4 * READ_TIMEOUT, seconds
    assert head(served.db) == before and received(served.db)[f"evt_{order}"] == 0
    deliveries = [x for x in served.lines()[logged:] if "provider" in x]
    assert deliveries == [], deliveries
    assert _cut_off(served) == cut + 1
    status, _, answer = served.post("/webhooks/stripe", body, signed(body))  # still serving
    assert (status, answer["outcome"]) == (200, "settled"), answer


def _cut_off(served: Server) -> float:
    """The service's count of connections it cut off, from `/metrics`."""
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    (value,) = [
        line.split()[-1]
        for line in text.splitlines()
        if line.startswith("orderflow_connections_cut_off_total")
    ]
    return float(value)


def test_an_unknown_provider_is_404(served: Server) -> None:
    status, _, answer = served.post("/webhooks/paypal", b"{}", {})
    assert (status, answer["kind"]) == (404, "unknown_provider")
    assert served.get("/nothing-here")[0] == 404


def test_healthz_reports_the_head_the_verification_and_the_worker(served: Server) -> None:
    status, _, report = served.get("/healthz")
    assert status == 200 and report["ok"] and report["status"] == "ok", report
    (position, hash_), _ = head(served.db)
    reported = int(report["head"].split(":")[0])
    assert reported <= position  # the test process may read a later commit
    assert report["verified"]["ok"] and report["verified"]["position"] >= 1
    assert report["verified"]["age_seconds"] >= 0 and report["last_error"] is None
    assert report["worker_lag_seconds"] == 0 and report["timers_due"] == 0
    assert {job["name"] for job in report["worker"]} >= {"timers"}
    assert hash_


def test_metrics_count_deliveries_by_outcome_in_prometheus_text(served: Server) -> None:
    (order,) = fresh(served)
    body = payments(served.db, [order])[order]
    served.post("/webhooks/stripe", body, signed(body))
    status, headers, text = served.get("/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = text.splitlines()
    assert "# TYPE orderflow_deliveries_total counter" in lines
    settled = [x for x in lines if x.startswith('orderflow_deliveries_total{outcome="settled"')]
    assert settled and float(settled[0].split()[-1]) >= 1
    assert "# TYPE orderflow_settle_seconds histogram" in lines
    assert any(x.startswith('orderflow_settle_seconds_bucket{le="+Inf"}') for x in lines)
    for gauge in (
        "orderflow_delivery_queue_depth",
        "orderflow_timers_due",
        "orderflow_worker_lag_seconds",
        "orderflow_ledger_head_position",
    ):
        assert f"# TYPE {gauge} gauge" in lines
    assert "# TYPE orderflow_timers_fired_total counter" in lines


def test_every_stripe_fixture_is_answered_2xx_and_a_real_payment_settles(tmp_path: Path) -> None:
    if not EVENTS:
        pytest.skip("the payment fixtures are not beside the repository")
    db = tmp_path / "usd.db"
    with Shop.open(db, provider=FakeProvider()) as shop:
        shop.add_product("CAP", "Cap", Money(1000, "USD"), stock=10)
        shop.start_order([("CAP", 2)], order_id="o1")  # 2000 USD, like the recorded events
        paid = pointed(
            shop, f"{HERE}/payment_intent.succeeded", "payment_intent.succeeded", "evt_a"
        )
    server = Server(db)
    try:
        answers = {
            key: server.post("/webhooks/stripe", body, signed(body)) for key, body in EVENTS.items()
        }
        settled = server.post("/webhooks/stripe", paid, signed(paid))
    finally:
        assert server.stop() == 0, server.logs()
    refused = {key: (s, a) for key, (s, _, a) in answers.items() if s != 200}
    assert refused == {}
    assert {a["outcome"] for _, _, a in answers.values()} <= {"recorded", "ignored", "settled"}
    assert (settled[0], settled[2]["outcome"], settled[2]["order_status"]) == (
        200,
        "settled",
        "fulfilled",
    )
    assert fulfilled(db) == {"o1": 1}
