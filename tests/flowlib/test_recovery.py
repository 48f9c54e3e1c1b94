"""Stuck and finished flows: a finished outcome is final; a stuck flow is taken back once fixed."""

from __future__ import annotations

import msgspec
import pytest
from flow_helpers import Pay, Reserve, kinds, make_engine, snapshot

from flowlib import (
    FlowDocument,
    FlowRecovered,
    FlowStuck,
    MemoryStore,
    NondeterminismError,
    Registry,
    RetireRefused,
    flow,
)


def _order(registry: Registry, suffix: str = "") -> None:
    @flow("order", registry=registry)
    def order(sku: str):  # type: ignore[no-untyped-def]
        yield Reserve(sku=sku + suffix)
        amount = yield Pay(order=sku)
        return amount


def _changed() -> Registry:
    changed = Registry()
    _order(changed, "-v2")
    return changed


def test_a_finished_flow_is_never_marked_stuck_under_edited_code(registry: Registry) -> None:
    _order(registry)
    store = MemoryStore()
    make_engine(registry, store=store).start("order", "A1", flow_id="o1")
    make_engine(registry, store=store).resume("o1", 7, awaiting=Pay)
    before = snapshot(store)
    edited = make_engine(_changed(), store=store)
    assert edited.resume("o1", 8, awaiting=Pay).resumed is False
    assert edited.cancel("o1").status == "completed"
    assert edited.fire_due_timers() == []
    assert snapshot(store) == before  # no FlowStuck after FlowEnded
    assert edited.result("o1") == 7


def test_result_reads_the_outcome_even_past_a_stray_stuck_mark(registry: Registry) -> None:
    """Logs written by older code may hold FlowStuck after FlowEnded: the outcome still stands."""
    _order(registry)
    store = MemoryStore()
    engine = make_engine(registry, store=store)
    engine.start("order", "A1", flow_id="o1")
    engine.resume("o1", 7, awaiting=Pay)
    store.append("flow:o1", [FlowStuck(seq=0, logged="a", yielded="b")], expected_version=5)
    assert engine.result("o1") == 7


def test_recover_takes_a_stuck_flow_back_once_the_code_is_fixed(registry: Registry) -> None:
    _order(registry)
    store = MemoryStore()
    make_engine(registry, store=store).start("order", "A1", flow_id="o1")
    broken = make_engine(_changed(), store=store)
    with pytest.raises(NondeterminismError):
        broken.resume("o1", 5, awaiting=Pay)
    assert broken.status("o1").status == "stuck"
    with pytest.raises(NondeterminismError):
        broken.recover("o1")  # still the broken code: stays stuck, marked once
    assert kinds(store, "o1").count("FlowStuck") == 1

    fixed = make_engine(registry, store=store)
    state = fixed.recover("o1")
    assert (state.status, state.awaits) == ("waiting", ["Pay"])
    assert fixed.status("o1").status == "waiting"
    assert isinstance(store.read("flow:o1")[-1], FlowRecovered)
    assert [row.flow_id for row in store.flows(status="stuck")] == []
    before = snapshot(store)
    assert fixed.recover("o1").status == "waiting"  # not stuck: nothing to do
    assert snapshot(store) == before
    assert fixed.resume("o1", 5, awaiting=Pay).status == "completed"
    assert fixed.result("o1") == 5


def test_retire_checks_the_receipt_of_the_import(registry: Registry) -> None:
    _order(registry)
    source = make_engine(registry)
    source.start("order", "A1", flow_id="o1")
    source.start("order", "B2", flow_id="o2")
    document = source.export(flow_ids=["o1"])
    other = source.export(flow_ids=["o2"])
    receipt = make_engine(registry).import_(document).receipt
    assert receipt.startswith("rcpt_")
    assert make_engine(registry).import_(document).receipt == receipt  # stable
    before = snapshot(source.store)  # type: ignore[arg-type]
    with pytest.raises(RetireRefused, match="receipt"):
        source.retire_moved(other, receipt=receipt)
    assert snapshot(source.store) == before  # type: ignore[arg-type]
    assert source.retire_moved(document, receipt=receipt) == ["o1"]
    assert msgspec.json.decode(document, type=FlowDocument).flows[0].flow_id == "o1"
