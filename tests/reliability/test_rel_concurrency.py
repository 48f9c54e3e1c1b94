"""Concurrency: several processes on one ledger at once (a file, or a PostgreSQL schema).

Four processes deliver the same shuffled webhooks (with duplicates) at the same moment:
each paid order is fulfilled exactly once, every event id is recorded once, nobody sees
"database is locked", and all exit 0. Four processes race for the last units of a SKU:
stock never goes negative and exactly the orders that fit are accepted.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from backends import Targets
from reliability_helpers import Clock, check_invariants, event_body, intent_of

from commerce import FakeProvider, Money, Shop, ShopConfig

WORKLOAD = Path(__file__).with_name("workload.py")
PROCESSES = 4
CONFIG = ShopConfig(payment_timeout_seconds=60)


def _run_together(tmp_path: Path, argv: list[list[str]]) -> list[list[str]]:
    """Start every process, release them at once through a file, and return their lines."""
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKLOAD), *args, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args in argv
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            ready = proc.stdout.readline()
            assert ready == b"READY\n", (ready, proc.stderr.read() if proc.stderr else b"")
        go.touch()
        results = [proc.communicate(timeout=120) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    outputs = []
    for proc, (out, err) in zip(procs, results, strict=True):
        text = err.decode()
        assert "locked" not in text.lower() and "busy" not in text.lower(), text[-3000:]
        assert proc.returncode == 0, text[-3000:]
        outputs.append(out.decode().splitlines())
    return outputs


@pytest.mark.both_backends
def test_processes_delivering_the_same_webhooks_fulfil_each_order_once(
    tmp_path: Path, targets: Targets
) -> None:
    db = targets.new()
    clock = Clock()
    bodies: list[bytes] = []
    paid: set[str] = set()
    with Shop.open(db, clock=clock, provider=FakeProvider(), config=CONFIG) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=100)
        for n in range(16):
            order_id = f"ord_{n:02d}"
            shop.start_order([("APL", 1 + n % 3)], order_id=order_id)
            intent = intent_of(shop, order_id)
            if n % 4 == 0:  # a failed attempt first
                body = event_body(intent, "payment_intent.payment_failed", f"evf_{n}", clock.unix)
                bodies.append(body)
            if n % 4 != 3:  # paid, under two event ids (the provider resent it)
                paid.add(order_id)
                for copy in ("a", "b"):
                    body = event_body(
                        intent, "payment_intent.succeeded", f"evs_{n}_{copy}", clock.unix
                    )
                    bodies.append(body)
    bodies_file = tmp_path / "bodies.json"
    encoded = [base64.b64encode(b).decode() for b in bodies + bodies[:8]]  # exact duplicates
    bodies_file.write_bytes(msgspec.json.encode(encoded))

    outputs = _run_together(
        tmp_path, [["deliver", str(db), str(bodies_file), str(seed)] for seed in range(PROCESSES)]
    )

    settled = Counter(
        line.split()[1] for lines in outputs for line in lines if line.endswith(" settled")
    )
    assert all(len(lines) == len(encoded) for lines in outputs)
    with Shop.open(db, clock=clock, config=CONFIG) as shop:
        facts = check_invariants(shop)
        assert {o for o, n in facts.fulfilled.items() if n} == paid
        assert all(n == 1 for n in facts.fulfilled.values()), facts.fulfilled
        sent_ids = {msgspec.json.decode(body)["id"] for body in bodies}
        assert set(facts.webhooks) == sent_ids  # check_invariants: each one exactly once
        assert sum(settled.values()) == len(paid), settled  # one "settled" answer per order
        for order_id in paid:
            assert shop.order(order_id).order.status == "fulfilled"


@pytest.mark.both_backends
def test_processes_competing_for_the_last_units_accept_exactly_what_fits(
    tmp_path: Path, targets: Targets
) -> None:
    db = targets.new()
    with Shop.open(db, config=CONFIG) as shop:
        shop.add_product("ONE", "Last units", Money(500, "EUR"), stock=7)
        shop.add_product("TWO", "Pairs", Money(900, "EUR"), stock=9)
    started = time.monotonic()
    argv = [["order", str(db), "ONE", "1", "4", str(seed)] for seed in range(PROCESSES)]
    argv += [["order", str(db), "TWO", "2", "3", str(10 + seed)] for seed in range(PROCESSES)]
    outputs = _run_together(tmp_path, argv)
    assert time.monotonic() - started < 60

    answers = [line.split() for lines in outputs for line in lines]
    one = [a for a in answers if int(a[1][1:].split("_")[0]) < 10]  # ids are p<seed>_<n>
    two = [a for a in answers if int(a[1][1:].split("_")[0]) >= 10]
    assert len(one) == 4 * PROCESSES and len(two) == 3 * PROCESSES
    assert sum(a[0] == "ACCEPTED" for a in one) == 7  # 16 asked for 1 each: 7 fit
    assert sum(a[0] == "ACCEPTED" for a in two) == 4  # 12 asked for 2 each: 4 fit, 1 left
    with Shop.open(db, config=CONFIG) as shop:
        check_invariants(shop)
        stock = {p.sku: (p.available, p.reserved, p.sold) for p in shop.products()}
        assert stock == {"ONE": (0, 7, 0), "TWO": (1, 8, 0)}
        accepted_ids = {a[1] for a in one + two if a[0] == "ACCEPTED"}
        assert {r.order_id for r in shop.orders()} == accepted_ids
