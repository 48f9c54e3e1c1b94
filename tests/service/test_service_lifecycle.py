"""The service's life as a process: drained by SIGTERM and killed by SIGKILL in the middle
of load (every 2xx it answered is in the ledger exactly once), timers firing with nobody
running `timers run`, and a broken chain refusing start-up.

`SERVICE_LOAD=2000` runs the load tests with that many orders (120 by default).
"""

from __future__ import annotations

import http.client
import queue
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from ledger_helpers import tamper
from service_helpers import (
    BIN,
    LOAD,
    Server,
    env,
    events,
    fulfilled,
    payments,
    received,
    signed,
    stocked,
)

from commerce import Shop

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
CLIENTS = 8
SIGNAL_AFTER = 10
"""Answers before the signal: early, so most of the load is still to come when it lands."""
DEADLINE = 120.0
"""A bound on waits for the server to act on its own (never a figure being measured)."""


def load(server: Server, bodies: dict[str, bytes], sig: int) -> dict[str, tuple[int, str]]:
    """Post every body from CLIENTS threads; send `sig` once SIGNAL_AFTER are answered.

    Returns the orders that were answered, with status and outcome; a post that found the
    server gone (refused, reset, cut off) is simply not answered.
    """
    work: queue.Queue[str] = queue.Queue()
    for order_id in bodies:
        work.put(order_id)
    answered: dict[str, tuple[int, str]] = {}
    begun = threading.Event()

    def client() -> None:
        while True:
            try:
                order_id = work.get_nowait()
            except queue.Empty:
                return
            body = bodies[order_id]
            try:
                status, _, answer = server.post("/webhooks/stripe", body, signed(body))
            except (OSError, http.client.HTTPException):  # refused, reset, cut off mid-answer
                continue
            answered[order_id] = (status, answer.get("outcome", answer.get("kind", "")))
            if len(answered) >= min(SIGNAL_AFTER, len(bodies) // 4):
                begun.set()

    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [pool.submit(client) for _ in range(CLIENTS)]
        begun.wait(DEADLINE)
        server.process.send_signal(sig)
        for future in futures:
            future.result()
    return answered


def check_once(db: Path, answered: dict[str, tuple[int, str]]) -> None:
    """Every delivery answered 2xx is in the ledger exactly once; nothing is in it twice."""
    seen, paid = received(db), fulfilled(db)
    assert all(count == 1 for count in seen.values()), seen
    assert all(count == 1 for count in paid.values()), paid
    for order_id, (status, _) in answered.items():
        if 200 <= status < 300:
            assert seen[f"evt_{order_id}"] == 1 and paid[order_id] == 1, order_id


def test_sigterm_in_the_middle_of_load_drains_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    bodies = payments(db, stocked(db, LOAD))
    server = Server(db)
    answered = load(server, bodies, signal.SIGTERM)
    assert server.stop(None) == 0, server.logs()
    assert {status for status, _ in answered.values()} <= {200}, answered  # drained: no 5xx
    assert answered, "nothing was answered before the signal"
    check_once(db, answered)
    assert server.lines()[-1]["event"] == "stopped"
    rest = {k: v for k, v in bodies.items() if k not in answered}
    again = Server(db)
    try:
        outcomes = Counter(
            again.post("/webhooks/stripe", body, signed(body))[2]["outcome"]
            for body in rest.values()
        )
    finally:
        assert again.stop() == 0
    assert set(outcomes) <= {"settled", "already_settled"}
    check_once(db, answered)
    assert set(fulfilled(db)) == set(bodies)


def test_sigkill_in_the_middle_of_load_then_redelivery_settles_the_rest(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    bodies = payments(db, stocked(db, LOAD))
    server = Server(db)
    answered = load(server, bodies, signal.SIGKILL)
    assert server.stop(None) == -signal.SIGKILL
    check_once(db, answered)
    again = Server(db)  # verifies the whole ledger before it takes traffic
    try:
        redelivered = {
            order_id: again.post("/webhooks/stripe", body, signed(body))
            for order_id, body in bodies.items()
        }
    finally:
        assert again.stop() == 0
    assert {status for status, _, _ in redelivered.values()} == {200}
    for order_id, (status, outcome) in answered.items():
        if status == 200 and outcome == "settled":
            assert redelivered[order_id][2]["outcome"] == "already_settled"
    check_once(db, answered)
    assert fulfilled(db) == Counter(dict.fromkeys(bodies, 1))
    with Shop.open(db, readonly=True) as shop:
        assert shop.ledger.verify().ok


def test_the_worker_expires_unpaid_orders_while_the_server_runs(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    orders = stocked(db, 5, timeout=1)
    server = Server(db)
    try:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and len(events(db, "OrderClosed")) < len(orders):
            time.sleep(0.2)
        status, _, text = server.get("/metrics")
        health = server.get("/healthz")[2]
    finally:
        assert server.stop() == 0, server.logs()
    closed = Counter((e.order_id, e.status) for e in events(db, "OrderClosed"))
    assert closed == Counter({(order_id, "expired"): 1 for order_id in orders})
    with Shop.open(db, readonly=True) as shop:
        assert {row.status for row in shop.orders()} == {"expired"}
        assert shop.products()[0].reserved == 0
    fired = [x for x in text.splitlines() if x.startswith("orderflow_timers_fired_total")]
    assert status == 200 and sum(float(x.split()[-1]) for x in fired) >= len(orders)
    assert health["timers_due"] == 0 and health["last_error"] is None
    assert sum(x.get("fired", 0) for x in server.lines() if x.get("job") == "timers") == 5


def test_a_broken_chain_refuses_start_up_naming_the_position(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    stocked(db, 2)
    tamper(db, "UPDATE events SET data = replace(data, '1250', '1') WHERE position = 1")
    log = tmp_path / "serve.log"
    with log.open("wb") as err:
        done = subprocess.run(
            [str(BIN), "serve", "--db", str(db), "--port", "0"],
            env=env(),
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=DEADLINE,
        )
    assert done.returncode == 1
    assert b"listening" not in done.stdout
    message = log.read_text()
    assert "refusing to start: the ledger does not verify at position 1" in message, message
    assert "Traceback" not in message


def test_sigterm_as_soon_as_it_listens_still_exits_0(tmp_path: Path) -> None:
    """A signal between the start-up check and uvicorn taking the signals is not lost."""
    db = tmp_path / "shop.db"
    stocked(db, 1)
    for _ in range(3):
        server = Server(db)
        assert server.stop() == 0, server.logs()
        assert server.lines()[-1]["event"] == "stopped"
