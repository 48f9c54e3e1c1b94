"""The flows projection agrees with flowlib's MemoryStore for the same appends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from flowlib.log import (
    AnyFlowEvent,
    Failed,
    FlowEnded,
    FlowStarted,
    FlowStuck,
    Ok,
    StepAnswered,
    StepDone,
    StepPending,
    stream_of,
)
from flowlib.store import MemoryStore
from ledger import FlowRow, Ledger

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RAW = msgspec.Raw(b"{}")


def _started(flow_id: str, name: str = "order", version: int = 1) -> FlowStarted:
    return FlowStarted(flow_id=flow_id, name=name, version=version, args=RAW, started_at=T0)


def _pending(seq: int, due: datetime | None, awaits: list[str], mode: Any = "await") -> StepPending:
    return StepPending(seq=seq, request=RAW, mode=mode, status="waiting", awaits=awaits, due=due)


SCRIPT: list[tuple[str, list[Any]]] = [
    ("f1", [_started("f1")]),
    ("f2", [_started("f2", "refund", 2), StepDone(seq=0, request=RAW, outcome=Ok(RAW))]),
    ("f1", [_pending(0, T0 + timedelta(minutes=30), ["AwaitPayment", "Timer"])]),
    ("f3", [StepDone(seq=0, request=RAW, outcome=Ok(RAW))]),  # no FlowStarted: no row
    ("f2", [_pending(1, datetime(2026, 1, 1, 0, 10, tzinfo=timezone(timedelta(hours=1))), [])]),
    ("f4", [_started("f4"), _pending(0, T0 + timedelta(minutes=5), ["Timer"], "retry")]),
    ("f2", [StepAnswered(seq=1, outcome=Ok(RAW))]),  # status omitted: the default "running"
    ("f5", [_started("f5"), _pending(0, None, ["AwaitPayment"])]),
    ("f4", [StepDone(seq=1, request=RAW, outcome=Failed(kind="x"))]),
    ("f6", [_started("f6"), FlowStuck(seq=0, logged="A", yielded="B")]),
    ("f7", [_started("f7"), FlowEnded(status="completed", result=RAW)]),
    ("f1", [_started("f1", "order", 3)]),  # restarted: row replaced, position kept
    ("f8", [_started("f8"), _pending(0, T0 + timedelta(minutes=5), ["Timer"])]),  # tie with f4
    (
        "f9",
        [
            _started("f9"),
            _pending(0, datetime(2026, 1, 1, 0, 10, tzinfo=timezone(timedelta(hours=1))), []),
        ],
    ),
    ("f10", [_started("f10"), _pending(0, T0 + timedelta(minutes=1), ["Timer"])]),
]


def _rows(rows: Any) -> list[tuple[Any, ...]]:
    return [(r.flow_id, r.name, r.version, r.status, list(r.awaits), r.due) for r in rows]


@pytest.fixture
def both(ledger: Ledger) -> tuple[Ledger, MemoryStore]:
    memory = MemoryStore()
    for flow_id, events in SCRIPT:
        for store in (ledger, memory):
            store.append(
                stream_of(flow_id), events, expected_version=store.version(stream_of(flow_id))
            )
    return ledger, memory


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"status": "waiting"},
        {"status": "running"},
        {"status": "stuck"},
        {"due_before": T0 + timedelta(minutes=10)},
        {"due_before": T0 + timedelta(hours=2)},
        {"due_before": T0 + timedelta(hours=2), "limit": 1},
        {"status": "waiting", "due_before": T0 + timedelta(hours=2)},
        {"limit": 2},
    ],
)
def test_flows_agree_with_memory_store(
    both: tuple[Ledger, MemoryStore], query: dict[str, Any]
) -> None:
    ledger, memory = both
    assert _rows(ledger.flows(**query)) == _rows(memory.flows(**query))


def test_flow_rows_are_typed_and_rebuildable(both: tuple[Ledger, MemoryStore]) -> None:
    ledger, _ = both
    row = next(r for r in ledger.flows() if r.flow_id == "f4")
    assert isinstance(row, FlowRow)
    assert row.awaits == ["Timer"] and row.due == T0 + timedelta(minutes=5)
    assert row.due is not None and row.due.tzinfo is not None
    table = ledger.query("SELECT * FROM flows ORDER BY flow_id")
    assert ledger.rebuild() > 0
    assert ledger.query("SELECT * FROM flows ORDER BY flow_id") == table
    assert ledger.verify().ok


def test_flow_streams_read_back_as_flowlib_events(both: tuple[Ledger, MemoryStore]) -> None:
    ledger, memory = both
    stream = stream_of("f2")
    assert ledger.read(stream, AnyFlowEvent) == memory.read(stream)
