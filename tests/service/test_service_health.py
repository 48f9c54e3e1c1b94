"""`/healthz` and `/metrics` on due timers: the count and the lag over real HTTP while no
worker runs, and the probe's query on the flows table (an index search, never a scan)."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from service_helpers import BIN, Server, env, stocked

from commerce import Shop
from service import Service, Settings

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
DEADLINE = 60.0
"""A bound on waits for timers to fall due (never a figure being measured)."""
QUIET = Settings(verify=False, worker=False, reconcile_every=1e6, scrub_every=1e6)


def gauge(text: str, name: str) -> float:
    (value,) = [x.split()[1] for x in text.splitlines() if x.startswith(name + " ")]
    return float(value)


def health_once_due(server: Server, count: int) -> dict[str, Any]:
    """`/healthz` once it reports `count` timers due (they fall due a second after start)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        report: dict[str, Any] = server.get("/healthz")[2]
        if report["timers_due"] == count or time.monotonic() > deadline:
            return report
        time.sleep(0.1)


def test_healthz_counts_due_timers_and_their_lag_until_they_fire(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    orders = stocked(db, 3, timeout=1)
    stocked(db, 5, timeout=3600, first=3)  # awaiting payment for an hour: not due
    server = Server(db, "--no-worker")
    try:
        due = health_once_due(server, len(orders))
        metrics = str(server.get("/metrics")[2])
        fired = subprocess.run(
            [str(BIN), "--db", str(db), "timers", "run"], env=env(), capture_output=True
        )
        after = server.get("/healthz")[2]
    finally:
        assert server.stop() == 0, server.logs()
    assert due["timers_due"] == len(orders), due
    assert due["worker_lag_seconds"] > 0 and due["ok"], due  # nobody fires them here
    assert gauge(metrics, "orderflow_timers_due") == len(orders)
    assert gauge(metrics, "orderflow_worker_lag_seconds") > 0
    assert fired.returncode == 0, fired.stderr
    assert (after["timers_due"], after["worker_lag_seconds"]) == (0, 0), after


def test_the_due_count_searches_the_due_index_and_stops_at_its_cap(tmp_path: Path) -> None:
    """The probe runs on every `/healthz` and scrape: it reads the partial index on `due`,
    not every flow the shop ever ran (a plan that scans `flows` fails this)."""
    db = tmp_path / "shop.db"
    stocked(db, 4, timeout=60)
    later = datetime.now(UTC) + timedelta(hours=1)
    with Shop.open(db, clock=lambda: later) as shop:
        service = Service(shop, {}, settings=QUIET)
        conn = shop.ledger.db.conn  # this thread's connection: the probe below uses it
        statements: list[str] = []
        conn.set_trace_callback(statements.append)
        report = msgspec.json.decode(service.health_answer().body)
        conn.set_trace_callback(None)
        flows = [sql for sql in statements if " FROM flows" in sql]
        plans = [
            " / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in flows
        ]
    assert report["timers_due"] == 4 and report["worker_lag_seconds"] > 3000, report
    assert flows and all(f"LIMIT {10_000}" in sql for sql in flows), flows
    for plan in plans:
        assert "USING INDEX idx_flows_due_set" in plan and "SCAN flows" not in plan, plan


def test_skip_verify_starts_unverified_and_the_scrub_catches_up_in_the_background(
    tmp_path: Path,
) -> None:
    """`--skip-verify` serves at once with no verified position; the worker's scrub then
    verifies the chain, and again after new events, which `/healthz` shows."""
    db = tmp_path / "shop.db"
    stocked(db, 2)
    server = Server(db, "--skip-verify", "--no-worker")
    try:
        unverified = server.get("/healthz")[2]
    finally:
        assert server.stop() == 0, server.logs()
    assert unverified["verified"] is None and unverified["ok"], unverified
    settings = Settings(verify=False, scrub_every=0.1, timers_poll=0.1, reconcile_every=1e6)
    with Shop.open(db) as shop:
        service = Service(shop, {}, settings=settings)
        service.start()
        try:
            first = verified_up_to(service, shop.ledger.head()[0])
            stocked(db, 1, first=2)  # new events, written by another shop on the file
            later = verified_up_to(service, shop.ledger.head()[0])
        finally:
            service.close()
    assert first["ok"] and not first["full"], first  # a scrub, not the start-up check
    assert later["ok"] and later["position"] > first["position"], (first, later)


def verified_up_to(service: Service, position: int) -> dict[str, Any]:
    """`/healthz`'s `verified` once the background scrub reached `position`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        verified: dict[str, Any] | None = msgspec.json.decode(service.health_answer().body)[
            "verified"
        ]
        done = verified is not None and verified["position"] >= position
        if done or time.monotonic() > deadline:
            assert verified is not None, "the scrub never ran"
            return verified
        time.sleep(0.05)
