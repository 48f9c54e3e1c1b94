"""Two processes settling the same order on one ledger at once: exactly one fulfils (on both
backends: on PostgreSQL the processes serialise on its advisory lock, not a file lock)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from backends import Targets
from shop_helpers import ShopClock, body_for, check_all, count_events, stock, stocked_shop

from commerce import FakeProvider, Money, Shop

WORKER = Path(__file__).with_name("settle_worker.py")


def race(
    tmp_path: Path, db: Path | str, jobs: list[list[str]], worker: Path = WORKER
) -> list[dict[str, object]]:
    go = tmp_path / "go"
    procs, readies = [], []
    for i, job in enumerate(jobs):
        ready = tmp_path / f"ready{i}"
        readies.append(ready)
        procs.append(
            subprocess.Popen(
                [sys.executable, str(worker), str(db), str(go), str(ready), *job],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in readies):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            break
        time.sleep(0.005)
    go.touch()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    return results


pytestmark = pytest.mark.both_backends


@pytest.fixture
def shared(targets: Targets, shop_clock: ShopClock) -> str:
    db = targets.new("shared")
    with Shop.open(db, provider=FakeProvider(), clock=shop_clock) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
    return db


def _after(db: str, clock: ShopClock) -> Shop:
    return Shop.open(db, provider=FakeProvider(), clock=clock)


@pytest.mark.parametrize("same_event_id", [True, False], ids=["same-event", "two-event-ids"])
def test_two_processes_deliver_the_webhook_at_once(
    tmp_path: Path, shop_clock: ShopClock, shared: str, same_event_id: bool
) -> None:
    with Shop.open(shared, provider=FakeProvider(), clock=shop_clock) as shop:
        bodies = [
            body_for(shop, "o1", "payment_intent.succeeded", event_id="evt_a"),
            body_for(
                shop,
                "o1",
                "payment_intent.succeeded",
                event_id="evt_a" if same_event_id else "evt_b",
            ),
        ]
    jobs = []
    for i, body in enumerate(bodies):
        path = tmp_path / f"body{i}.json"
        path.write_bytes(body)
        jobs.append(["webhook", str(shop_clock.ts()), str(path)])
    results = race(tmp_path, shared, jobs)
    assert sorted(str(r["outcome"]) for r in results) == ["already_settled", "settled"]
    with _after(shared, shop_clock) as shop:
        assert count_events(shop, "OrderFulfilled") == 1
        assert count_events(shop, "PaymentReceived") == 1
        assert shop.order("o1").order.status == "fulfilled"
        assert stock(shop, "MUG") == (8, 0, 2)
        check_all(shop)


def test_two_processes_settle_directly_at_once(
    tmp_path: Path, shop_clock: ShopClock, shared: str
) -> None:
    results = race(tmp_path, shared, [["settle", "o1"], ["settle", "o1"]])
    assert sorted(str(r["outcome"]) for r in results) == ["already_settled", "settled"]
    with _after(shared, shop_clock) as shop:
        assert count_events(shop, "OrderFulfilled") == 1
        check_all(shop)


RACE_WORKER = Path(__file__).with_name("race_worker.py")


def test_cancel_racing_a_payment_in_another_process_never_returns_ok_unless_cancelled(
    tmp_path: Path, targets: Targets
) -> None:
    """Issue 11 case 5: the check and the cancel are one transaction, so a cancel that
    returns normally really cancelled; the loser of the race gets `InvalidTransition`."""
    db, count = targets.new("race"), 120
    with Shop.open(db, provider=FakeProvider()) as shop:
        shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=count)
        for i in range(count):
            shop.start_order([("MUG", 1)], order_id=f"o{i}")
    settled, cancelled = race(
        tmp_path, db, [["settle", str(count)], ["cancel", str(count)]], worker=RACE_WORKER
    )
    with Shop.open(db, provider=FakeProvider()) as shop:
        for order_id, answer in cancelled.items():
            final = shop.order(order_id).order.status
            if answer == "cancelled":  # the cancel won: a payment after it is given back
                assert final in ("cancelled", "refunded"), (order_id, final)
                assert settled[order_id] in ("cancelled", "refunded"), settled[order_id]
            else:  # the payment won
                assert (answer, final) == ("refused:fulfilled", "fulfilled"), (order_id, answer)
        check_all(shop)
