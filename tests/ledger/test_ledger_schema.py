"""Schema migrations: a ledger of an older schema is brought up to date when opened."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from flowlib.log import FlowStarted, StepPending, stream_of
from ledger import SCHEMA_VERSION, Ledger

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RAW = msgspec.Raw(b"{}")
_TIMERS = "EXPLAIN QUERY PLAN SELECT flow_id FROM flows WHERE due IS NOT NULL AND due <= ?"


def _waiting(ledger: Ledger, flow_id: str, due: datetime | None) -> None:
    started = FlowStarted(flow_id=flow_id, name="n", version=1, args=RAW, started_at=T0)
    pending = StepPending(seq=0, request=RAW, mode="await", status="waiting", due=due)
    ledger.append(stream_of(flow_id), [started, pending], expected_version=0)


def _indexes(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'flows'"
        )
        return {name: sql for name, sql in rows if sql}
    finally:
        conn.close()


def _as_schema_2(path: Path) -> None:
    """Undo migration 0003 by hand: the full index on `due`, and user_version 2."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP INDEX idx_flows_due_set")
        conn.execute("CREATE INDEX idx_flows_due ON flows (due)")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0003_partial_due_index'")
        conn.execute("PRAGMA user_version = 2")
    finally:
        conn.close()


def test_a_new_ledger_indexes_only_the_flows_that_are_due(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    with Ledger.open(path) as ledger:
        _waiting(ledger, "soon", T0 + timedelta(minutes=5))
        _waiting(ledger, "never", None)
        plan = " ".join(str(row) for row in ledger.db.execute(_TIMERS, ("9999",)))
        assert "idx_flows_due_set" in plan  # the timer query still uses the index
        counted = ledger.db.execute(
            "SELECT count(*) FROM flows INDEXED BY idx_flows_due_set WHERE due IS NOT NULL"
        ).fetchone()
        assert counted == (1,)
    assert "WHERE due IS NOT NULL" in _indexes(path)["idx_flows_due_set"]


def test_a_schema_2_ledger_gets_the_partial_index_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Ledger.open(path) as ledger:
        _waiting(ledger, "soon", T0 + timedelta(minutes=5))
        _waiting(ledger, "never", None)
        rows = ledger.flows()
    _as_schema_2(path)
    assert set(_indexes(path)) == {"idx_flows_due"}
    with Ledger.open(path) as ledger:
        assert ledger.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,) == (3,)
        assert ledger.flows() == rows
        assert [r.flow_id for r in ledger.flows(due_before=T0 + timedelta(hours=1))] == ["soon"]
        assert ledger.verify().ok
    assert set(_indexes(path)) == {"idx_flows_due_set"}
