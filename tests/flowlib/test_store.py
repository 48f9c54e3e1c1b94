"""MemoryStore: append-only streams, optimistic concurrency, transactions, the flow index."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flow_helpers import T0, Reserve

from flowlib import MemoryStore, VersionConflict
from flowlib.log import NULL, FlowEnded, FlowStarted, Ok, StepAnswered, StepPending


def started(flow_id: str, name: str = "order") -> FlowStarted:
    return FlowStarted(flow_id=flow_id, name=name, version=1, args=NULL, started_at=T0)


def waiting(seq: int, due_in: float | None = None) -> StepPending:
    due = None if due_in is None else T0 + timedelta(seconds=due_in)
    return StepPending(
        seq=seq, request=NULL, mode="await", status="waiting", awaits=["Pay"], due=due
    )


def test_append_read_and_version() -> None:
    store = MemoryStore()
    assert store.read("s") == [] and store.version("s") == 0
    assert store.append("s", [Reserve(sku="a"), Reserve(sku="b")], expected_version=0) == 2
    assert store.append("s", [Reserve(sku="c")], expected_version=2) == 3
    assert [r.sku for r in store.read("s")] == ["a", "b", "c"]
    assert store.streams() == ["s"]


def test_read_returns_a_copy() -> None:
    store = MemoryStore()
    store.append("s", [Reserve(sku="a")], expected_version=0)
    store.read("s").clear()
    assert store.version("s") == 1


def test_a_stale_expected_version_is_refused_and_changes_nothing() -> None:
    store = MemoryStore()
    store.append("s", [Reserve(sku="a")], expected_version=0)
    with pytest.raises(VersionConflict) as info:
        store.append("s", [Reserve(sku="b")], expected_version=0)
    assert (info.value.stream, info.value.expected, info.value.actual) == ("s", 0, 1)
    assert store.version("s") == 1
    with pytest.raises(VersionConflict):
        store.append("new", [Reserve(sku="b")], expected_version=3)
    assert store.streams() == ["s"]


def test_a_transaction_rolls_back_every_append_on_error() -> None:
    store = MemoryStore()
    store.append("flow:a", [started("a")], expected_version=0)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        assert tx is store
        store.append("flow:a", [waiting(0, 5)], expected_version=1)
        store.append("flow:b", [started("b")], expected_version=0)
        store.append("other", [Reserve(sku="x")], expected_version=0)
        assert store.flows(status="waiting")[0].flow_id == "a"
        raise RuntimeError("abort")
    assert store.streams() == ["flow:a"] and store.version("flow:a") == 1
    assert [(r.flow_id, r.status, r.due) for r in store.flows()] == [("a", "running", None)]


def test_rolling_back_a_new_plain_stream_leaves_the_flow_index_alone() -> None:
    store = MemoryStore()
    store.append("flow:s:1", [started("s:1")], expected_version=0)
    with pytest.raises(RuntimeError), store.transaction():
        store.append("orders:1", [Reserve(sku="x")], expected_version=0)
        raise RuntimeError("abort")
    assert [r.flow_id for r in store.flows()] == ["s:1"]


def test_nested_transactions_join_the_outer_one() -> None:
    store = MemoryStore()
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction():
            store.append("s", [Reserve(sku="a")], expected_version=0)
        store.append("s", [Reserve(sku="b")], expected_version=1)
        raise RuntimeError("abort")
    assert store.version("s") == 0
    with store.transaction():
        with pytest.raises(RuntimeError), store.transaction():
            store.append("s", [Reserve(sku="a")], expected_version=0)
            raise RuntimeError("inner")
        store.append("s", [Reserve(sku="b")], expected_version=1)
    assert [r.sku for r in store.read("s")] == ["a", "b"]  # only the outermost rolls back


def test_a_committed_transaction_is_not_rolled_back_by_a_later_one() -> None:
    store = MemoryStore()
    with store.transaction():
        store.append("s", [Reserve(sku="a")], expected_version=0)
    with pytest.raises(RuntimeError), store.transaction():
        store.append("s", [Reserve(sku="b")], expected_version=1)
        raise RuntimeError("abort")
    assert [r.sku for r in store.read("s")] == ["a"]


def test_the_flow_index_follows_status_awaits_and_due() -> None:
    store = MemoryStore()
    store.append("flow:a", [started("a"), waiting(0, 30)], expected_version=0)
    store.append("flow:b", [started("b"), waiting(0, 10)], expected_version=0)
    store.append("flow:c", [started("c"), waiting(0)], expected_version=0)
    store.append("flow:d", [started("d")], expected_version=0)
    row = store.flows(status="waiting")[0]
    assert (row.name, row.version, row.awaits, row.due) == (
        "order",
        1,
        ["Pay"],
        T0 + timedelta(seconds=30),
    )
    due = store.flows(due_before=T0 + timedelta(seconds=30))
    assert [r.flow_id for r in due] == ["b", "a"]
    assert [r.flow_id for r in store.flows(due_before=T0 + timedelta(seconds=29))] == ["b"]
    assert [r.flow_id for r in store.flows(due_before=T0 + timedelta(seconds=99), limit=1)] == ["b"]
    store.append("flow:b", [StepAnswered(seq=0, outcome=Ok(NULL))], expected_version=2)
    assert store.flows(status="running")[0].flow_id == "b"
    assert store.flows(due_before=T0 + timedelta(seconds=99)) == store.flows(status="waiting")[:1]
    store.append("flow:b", [FlowEnded(status="completed")], expected_version=3)
    assert [r.flow_id for r in store.flows(status="completed")] == ["b"]
    assert [r.flow_id for r in store.flows(status="running")] == ["d"]


def test_plain_streams_are_not_indexed() -> None:
    store = MemoryStore()
    store.append("orders:1", [Reserve(sku="a")], expected_version=0)
    assert store.flows() == []
