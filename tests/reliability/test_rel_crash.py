"""Crash tests: a real workload process is SIGKILLed at random moments, then recovered.

For each seed, `workload.py churn` runs three times on one ledger and is killed each time
(30 kills over the 10 seeds on a file; 12 over 4 seeds on a PostgreSQL schema). After every
kill the parent reopens the ledger: `verify()`
passes, the invariants hold, and every webhook the workload acknowledged is on record.
At the end every body the fake provider had sent is delivered again, the timers fire, and
each paid order has been settled exactly once (fulfilled, or refunded if it had expired
first), with nothing left half-done.
"""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from backends import Targets
from reliability_helpers import SECRET, T0, Clock, check_invariants

from commerce import FakeProvider, Money, Shop, ShopConfig, decode_event, sign

WORKLOAD = Path(__file__).with_name("workload.py")
SEEDS = range(10)
PG_SEEDS = 4
KILLS_PER_SEED = 3
CONFIG = ShopConfig(payment_timeout_seconds=60)


def _open(path: str, clock: Clock) -> Shop:
    return Shop.open(
        path, synchronous="NORMAL", clock=clock, provider=FakeProvider(), config=CONFIG
    )


def _run_and_kill(db: str, sent: Path, seed: int, start: float, delay: float) -> list[str]:
    """Start the churn workload, SIGKILL it `delay` s after it is ready; its ACK lines."""
    args = [sys.executable, str(WORKLOAD), "churn", db, str(sent), str(seed), str(start)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready == b"READY\n", (ready, proc.stderr.read() if proc.stderr else b"")
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err.decode()[-2000:])
    complete = out.decode().split("\n")[:-1]  # a line the kill cut short was not acknowledged
    return [line for line in complete if line.startswith("ACK ")]


def _sent_bodies(sent: Path) -> list[bytes]:
    """The bodies the workload wrote before sending (a line cut by the kill is dropped)."""
    if not sent.exists():
        return []
    lines = sent.read_bytes().split(b"\n")[:-1]  # the last piece has no newline yet
    return list(dict.fromkeys(base64.b64decode(line) for line in lines))


@pytest.mark.both_backends
@pytest.mark.parametrize("seed", SEEDS, ids=[f"seed{s}" for s in SEEDS])
def test_sigkill_then_recover_settles_each_paid_order_once(
    tmp_path: Path, targets: Targets, seed: int
) -> None:
    if targets.postgres and seed >= PG_SEEDS:
        pytest.skip(f"the PostgreSQL leg runs the first {PG_SEEDS} seeds (12 kills)")
    rng = random.Random(seed)
    db, sent = targets.new(), tmp_path / "sent.b64"
    clock = Clock()
    with _open(db, clock) as shop:
        for sku in ("APL", "BRD", "CHS"):
            shop.add_product(sku, sku.title(), Money(rng.randint(100, 900), "EUR"), stock=12)
    acked: list[str] = []
    for kill in range(KILLS_PER_SEED):
        start = (kill + 1) * 100_000  # later runs find earlier orders' timeouts due
        acked += _run_and_kill(db, sent, seed * 10 + kill, start, rng.uniform(0.02, 0.4))
        with _open(db, clock) as shop:
            check_invariants(shop)
            on_record = {row[0] for row in shop.ledger.query("SELECT event_id FROM webhooks")}
            missing = {line.split()[1] for line in acked} - on_record
            assert not missing, f"acknowledged webhooks lost after SIGKILL: {sorted(missing)}"

    bodies = _sent_bodies(sent)
    clock.now = T0 + timedelta(days=30)
    with _open(db, clock) as shop:
        shop.fire_timers()  # provider calls cut short are retried; unpaid orders expire
        for body in bodies:
            shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
        clock.advance(3600)
        shop.fire_timers()
        facts = check_invariants(shop)
        paid_orders = defaultdict(set)
        for body in bodies:
            event = decode_event(body)
            if event.event_type == "payment_intent.succeeded":
                paid_orders[event.order_id].add(event.event_id)
        for order_id in paid_orders:
            row = shop.order(order_id).order
            fulfilled, refunded = facts.fulfilled[order_id], facts.refunds_issued[order_id]
            assert fulfilled + refunded == 1, (row, fulfilled, refunded)
            assert len(facts.received[order_id]) == 1, row
            assert row.status == ("fulfilled" if fulfilled else "refunded"), row
        unfinished = [r for r in shop.orders() if r.status in ("placed", "awaiting_payment")]
        assert not unfinished, unfinished
        assert not shop.engine.flows("running") and not shop.engine.flows("waiting")
