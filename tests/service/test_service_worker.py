"""The worker: alone in several processes (never twice), and through its own failures
(logged, retried, shown in `/healthz`); storage failures answered 503 over real HTTP."""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from service_helpers import (
    BIN,
    SECRET,
    env,
    events,
    payments,
    received,
    request,
    signed,
    stocked,
    wsgi_server,
)
from together import held_in_a_thread

from commerce import Shop, StripeWebhooks
from service import Service, Settings, Worker, create_wsgi_app

DEADLINE = 120.0
"""A bound on waits for the workers to act on their own (never a figure being measured)."""
PATH = "/webhooks/stripe"
QUIET = Settings(verify=False, worker=False, reconcile_every=1e6, scrub_every=1e6)


@pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
def test_two_worker_processes_fire_each_timer_once(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    stocked(db, 0, timeout=1)
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = []
    for log in logs:
        with log.open("wb") as err:
            workers.append(
                subprocess.Popen(
                    [str(BIN), "worker", "--db", str(db)],
                    env=env(),
                    stdout=subprocess.PIPE,
                    stderr=err,
                )
            )
    try:
        for worker in workers:  # both are running before the timers fall due
            assert worker.stdout is not None
            assert worker.stdout.readline().startswith(b"verified ")
            assert worker.stdout.readline() == b"worker running\n"
        orders = stocked(db, 12, timeout=1)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and len(events(db, "OrderClosed")) < len(orders):
            time.sleep(0.2)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.communicate(timeout=DEADLINE)
    codes = [worker.returncode for worker in workers]
    assert codes == [0, 0], [log.read_text() for log in logs]
    closed = Counter(e.order_id for e in events(db, "OrderClosed"))
    assert closed == Counter(dict.fromkeys(orders, 1))
    fired = [
        msgspec.json.decode(text).get("fired", 0)
        for log in logs
        for text in log.read_text().splitlines()
        if text.startswith('{"job":"timers"')
    ]
    assert sum(fired) == len(orders)  # the process that lost a race found nothing to fire


@contextmanager
def write_lock_held(db: Path) -> Iterator[None]:
    """Another shop on the file holds its write lock (in a thread) until the block ends."""
    with Shop.open(db) as other, held_in_a_thread(other.ledger.transaction):
        yield


def _job(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One job's entry (the report lists them by name: reconcile may have run too, its
    first run falls at a random moment)."""
    (job,) = [job for job in report["worker"] if job["name"] == name]
    return job


def test_the_worker_survives_its_own_failures_and_healthz_shows_them(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    (order,) = stocked(db, 1, timeout=1)
    later = datetime.now(UTC) + timedelta(hours=1)  # the order's timeout is due
    settings = msgspec.structs.replace(QUIET, max_backoff=0.0)  # retry at once, for the test
    with Shop.open(db, clock=lambda: later, busy_timeout=0.2) as shop:
        service = Service(shop, {}, settings=settings)
        # Seeded so that reconcile's first run (random, up to 30 s away) falls past the test.
        worker = Worker(
            shop,
            settings=settings,
            health=service.health,
            metrics=service.metrics,
            rng=random.Random(15),
        )
        with write_lock_held(db):
            worker.step()
            first = msgspec.json.decode(service.health_answer().body)
            worker.step()
            worker.step()
            failing = service.health_answer()
        assert first["ok"] and _job(first, "timers")["consecutive_failures"] == 1
        assert first["last_error"]["where"] == "timers"
        assert first["last_error"]["error"].startswith("LockTimeout")  # claiming the timers
        report = msgspec.json.decode(failing.body)
        assert failing.status == 503 and report["status"] == "worker failing"
        worker.step()  # the lock is free again
        healed = service.health_answer()
        assert healed.status == 200
        assert _job(msgspec.json.decode(healed.body), "timers")["consecutive_failures"] == 0
        assert shop.order(order).order.status == "expired"
        assert service.metrics.worker_errors.value(job="timers") == 3


def test_a_held_write_lock_is_503_with_retry_after_then_redelivery_settles(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    (order,) = stocked(db, 1)
    body = payments(db, [order])[order]
    with Shop.open(db, busy_timeout=0.2) as shop:
        app = create_wsgi_app(shop, {"stripe": StripeWebhooks(SECRET)}, settings=QUIET)
        with wsgi_server(app) as port:
            with write_lock_held(db):
                status, headers, answer = request(
                    port, "POST", "/webhooks/stripe", body, signed(body)
                )
            assert (status, headers["retry-after"], answer["kind"]) == (503, "5", "LockTimeout")
            assert received(db) == {}
            status, _, answer = request(port, "POST", PATH, body, signed(body))
            assert (status, answer["outcome"]) == (200, "settled")
        app.close()


def test_a_full_disk_is_503_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    (order,) = stocked(db, 1)
    doc = msgspec.json.decode(payments(db, [order])[order])
    body = msgspec.json.encode({**doc, "padding": "x" * 100_000})  # it needs new pages
    with Shop.open(db) as shop:
        service = Service(shop, {"stripe": StripeWebhooks(SECRET)}, settings=QUIET)
        conn = shop.ledger.db  # this thread's connection, which `deliver` below uses
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        full = service.deliver("stripe", body, signed(body))
        conn.execute("PRAGMA max_page_count = 1073741823")
        again = service.deliver("stripe", body, signed(body))
    assert (full.status, dict(full.headers)["Retry-After"]) == (503, "5")
    assert msgspec.json.decode(full.body)["kind"] == "DiskFull"
    assert (again.status, again.outcome) == (200, "settled")
    assert received(db) == {f"evt_{order}": 1}
