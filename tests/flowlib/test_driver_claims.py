"""Engines sharing a ledger claim due timers before firing them: each is tried once a round."""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
from flow_helpers import T0, FakeClock
from timer_worker import REGISTRY, CountingEngine
from together import run_together

from flowlib import Engine, MemoryStore, Registry, Timer, flow
from flowlib.store import CLAIM_BATCH
from ledger import Ledger

if TYPE_CHECKING:
    from backends import Targets

pytestmark = pytest.mark.both_backends

WORKER = str(Path(__file__).with_name("timer_worker.py"))
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}


def _napping(ledger: Ledger, count: int) -> CountingEngine:
    """An engine on `ledger` with `count` flows n0.. asleep for 1..count seconds."""
    engine = CountingEngine(ledger, clock=FakeClock(), registry=REGISTRY)
    with ledger.transaction():
        for n in range(count):
            engine.start("nap", n + 1, flow_id=f"n{n:03}")
    return engine


def _leases(ledger: Ledger) -> list[tuple[str, str]]:
    return ledger.query("SELECT flow_id, owner FROM timer_leases ORDER BY flow_id")


def test_a_round_claims_in_batches_fires_in_due_order_and_releases(targets: Targets) -> None:
    count = 2 * CLAIM_BATCH + 3
    with Ledger.open(targets.new()) as ledger:
        engine = _napping(ledger, count)
        later = T0 + timedelta(hours=1)
        first = engine.fire_due_timers(later, limit=CLAIM_BATCH + 1)
        assert [f.flow_id for f in first] == [f"n{n:03}" for n in range(CLAIM_BATCH + 1)]
        assert _leases(ledger) == []  # released at the end of the round
        rest = engine.fire_due_timers(later)
        assert [f.flow_id for f in rest] == [f"n{n:03}" for n in range(CLAIM_BATCH + 1, count)]
        assert {f.status for f in first + rest} == {"completed"}
        assert engine.tries == count and _leases(ledger) == []
        assert engine.fire_due_timers(later) == []
        assert ledger.verify().ok


def test_a_dead_engines_leases_hold_its_flows_until_they_expire(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        engine = _napping(ledger, 3)
        now = T0 + timedelta(seconds=10)
        ledger.claim_due(now, limit=2, lease=30, owner="died-holding-these")
        assert [f.flow_id for f in engine.fire_due_timers(now)] == ["n002"]
        assert engine.fire_due_timers(now + timedelta(seconds=29)) == []
        expired = engine.fire_due_timers(now + timedelta(seconds=30))
        assert [f.flow_id for f in expired] == ["n000", "n001"]
        assert engine.tries == 3 and _leases(ledger) == []


def test_a_failed_fire_releases_its_lease_so_the_next_round_tries_again(
    targets: Targets,
) -> None:
    registry, changed = Registry(), Registry()

    @flow("nap", registry=registry)
    def nap():  # type: ignore[no-untyped-def]
        yield Timer(seconds=60)
        return "woke"

    @flow("nap", registry=changed)
    def nap_v2():  # type: ignore[no-untyped-def]
        yield Timer(seconds=61)
        return "woke"

    with Ledger.open(targets.new()) as ledger:
        Engine(ledger, clock=FakeClock(), registry=registry).start("nap", flow_id="n")
        due = T0 + timedelta(seconds=60)
        broken = Engine(ledger, clock=FakeClock(), registry=changed)
        assert [(f.flow_id, f.status) for f in broken.fire_due_timers(due)] == [("n", "stuck")]
        assert _leases(ledger) == []
        fixed = Engine(ledger, clock=FakeClock(), registry=registry)
        assert [f.status for f in fixed.fire_due_timers(due)] == ["completed"]


def test_an_owner_names_the_leases_of_a_round(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        engine = _napping(ledger, 2)
        seen: list[list[tuple[str, str]]] = []
        real = engine._fire

        def spying(flow_id, now):  # type: ignore[no-untyped-def]
            seen.append(_leases(ledger))
            return real(flow_id, now)

        engine._fire = spying  # type: ignore[method-assign]
        engine.timer_owner = "host:42"
        engine.fire_due_timers(T0 + timedelta(minutes=1), lease=timedelta(seconds=5))
        assert seen[0] == [("n000", "host:42"), ("n001", "host:42")]
        engine.fire_due_timers(T0 + timedelta(minutes=1), owner="other")
        assert _leases(ledger) == []


def test_a_store_without_claims_is_read_as_before() -> None:
    store = MemoryStore()
    engine = Engine(store, clock=FakeClock(), registry=REGISTRY)
    for n in range(3):
        engine.start("nap", n + 1, flow_id=f"n{n}")
    fired = engine.fire_due_timers(T0 + timedelta(minutes=1), limit=2)
    assert [f.flow_id for f in fired] == ["n0", "n1"]


@pytest.mark.slow
def test_four_engine_processes_try_each_due_timer_once_in_a_round(targets: Targets) -> None:
    """No stampede: without claims every engine would try every due flow it had read."""
    target, count = targets.new(), 160
    with Ledger.open(target) as ledger:
        _napping(ledger, count)
    now = (T0 + timedelta(hours=1)).isoformat()
    outs = run_together([[sys.executable, WORKER, target, now]] * 4, ENV)
    reports = [msgspec.json.decode(out) for out in outs]
    fired = sorted(flow_id for report in reports for flow_id in report["fired"])
    assert fired == [f"n{n:03}" for n in range(count)]  # each fired, once
    assert sum(report["tries"] for report in reports) == count  # and tried once, in all
    with Ledger.open(target) as ledger:
        assert {row.status for row in ledger.flows()} == {"completed"}
        assert _leases(ledger) == []
        assert ledger.verify().ok
