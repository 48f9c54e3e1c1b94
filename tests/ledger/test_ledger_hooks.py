"""Commit hooks, and the append path's statements: what runs, and that nothing is lost by it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import SQLITE_ONLY, Deposited

from flowlib.log import FlowEnded, FlowStarted, StepAnswered, StepDone, StepPending, stream_of
from flowlib.log import Ok as Answered
from ledger import ConcurrencyError, Ledger, TransactionAborted

RAW = msgspec.Raw(b"{}")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Boom(Exception):
    pass


# -- after_commit -------------------------------------------------------------------------------


def test_hooks_run_after_the_outermost_commit(ledger: Ledger) -> None:
    seen: list[str] = []
    with ledger.transaction():
        ledger.append("s", [Deposited("a", 1)])
        with ledger.transaction():
            ledger.after_commit(lambda: seen.append("inner"), lambda: seen.append("undone"))
        ledger.after_commit(lambda: seen.append("outer"))
        assert seen == []  # nothing is committed yet
    assert seen == ["inner", "outer"]


def test_a_rollback_runs_the_undo_hooks_instead(ledger: Ledger) -> None:
    seen: list[str] = []
    with pytest.raises(Boom), ledger.transaction():
        ledger.after_commit(lambda: seen.append("done"), lambda: seen.append("undone"))
        raise Boom
    assert seen == ["undone"]


def test_a_savepoint_rollback_undoes_only_its_own_hooks(ledger: Ledger) -> None:
    seen: list[str] = []
    with ledger.transaction():
        ledger.after_commit(lambda: seen.append("kept"), lambda: seen.append("lost"))
        with pytest.raises(Boom), ledger.transaction():
            ledger.after_commit(lambda: seen.append("inner"), lambda: seen.append("inner undone"))
            raise Boom
        assert seen == ["inner undone"]
    assert seen == ["inner undone", "kept"]


def test_outside_a_transaction_a_hook_runs_at_once(ledger: Ledger) -> None:
    seen: list[str] = []
    ledger.after_commit(lambda: seen.append("now"))
    assert seen == ["now"]


def test_a_failed_commit_runs_the_undo_hooks(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db") as ledger:
        seen: list[str] = []
        with pytest.raises(TransactionAborted), ledger.transaction():
            ledger.after_commit(lambda: seen.append("done"), lambda: seen.append("undone"))
            ledger.db.execute("ROLLBACK")  # SQLite ended it: the commit cannot happen
        assert seen == ["undone"]


# -- statements --------------------------------------------------------------------------------


@contextmanager
def traced(ledger: Ledger) -> Iterator[list[str]]:
    statements: list[str] = []
    ledger.db.conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        ledger.db.conn.set_trace_callback(None)


@SQLITE_ONLY  # PostgreSQL probes: a failed INSERT would fail its whole transaction
def test_a_new_stream_is_appended_without_a_version_probe(ledger: Ledger) -> None:
    with traced(ledger) as statements:
        ledger.append("new", [Deposited("a", 1), Deposited("a", 2)], expected_version=0)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    inserts = [s for s in statements if "INTO events" in s]
    assert len(inserts) == 1  # both rows in one statement
    assert not [s for s in selects if "max(version)" in s]


def test_expected_version_zero_on_an_existing_stream_still_conflicts(ledger: Ledger) -> None:
    ledger.append("s", [Deposited("a", 1)])
    other = Ledger.open(ledger.path)  # its session has never seen the stream
    try:
        with other.transaction():
            with pytest.raises(ConcurrencyError) as caught:
                other.append("s", [Deposited("a", 2), Deposited("a", 3)], expected_version=0)
            assert (caught.value.expected, caught.value.actual) == (0, 1)
            other.append("t", [Deposited("b", 1)])  # the transaction goes on: nothing was written
        assert other.version("s") == 1 and other.version("t") == 1
        assert other.verify().ok
    finally:
        other.close()


@SQLITE_ONLY  # statements are traced through sqlite3
def test_a_version_read_in_a_transaction_is_remembered_until_it_ends(ledger: Ledger) -> None:
    ledger.append("s", [Deposited("a", 1)])
    with ledger.transaction():
        assert ledger.version("s") == 1
        with traced(ledger) as statements:
            assert ledger.version("s") == 1
            ledger.append("s", [Deposited("a", 2)], expected_version=1)
            assert ledger.version("s") == 2
        assert not [s for s in statements if "max(version)" in s]
    assert ledger.version("s") == 2


@SQLITE_ONLY  # statements are traced through sqlite3
def test_a_flow_batch_writes_its_index_row_once(ledger: Ledger) -> None:
    events = [
        FlowStarted(flow_id="f", name="n", version=1, args=RAW, started_at=T0),
        StepDone(seq=0, request=RAW, outcome=Answered(RAW)),
        StepPending(seq=1, request=RAW, mode="await", status="waiting", due=T0, awaits=["X"]),
    ]
    with traced(ledger) as statements:
        ledger.append(stream_of("f"), events, expected_version=0)
    assert len([s for s in statements if "flows" in s]) == 1
    (row,) = ledger.flows()
    assert (row.status, row.awaits, row.due) == ("waiting", ["X"], T0)


# -- the flows projection written per batch equals a rebuild ----------------------------------

_flow_events = st.sampled_from(["started", "done", "pending", "answered", "ended"])


def _event(kind: str, n: int) -> Any:
    due = T0 + timedelta(minutes=n)
    return {
        "started": FlowStarted(flow_id="f", name=f"v{n}", version=n, args=RAW, started_at=T0),
        "done": StepDone(seq=n, request=RAW, outcome=Answered(RAW)),
        "pending": StepPending(seq=n, request=RAW, mode="await", status="waiting", due=due),
        "answered": StepAnswered(seq=n, outcome=Answered(RAW)),
        "ended": FlowEnded(status="completed"),
    }[kind]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from("fg"), _flow_events), min_size=1), max_size=8))
def test_flow_rows_written_per_batch_equal_a_rebuild(
    batches: list[list[tuple[str, str]]],
) -> None:
    with Ledger.memory() as ledger:
        for n, batch in enumerate(batches):
            for flow_id in "fg":
                events = [_event(kind, n) for owner, kind in batch if owner == flow_id]
                if events:
                    ledger.append(stream_of(flow_id), events)
        stored = ledger.query("SELECT * FROM flows ORDER BY flow_id")
        report = ledger.verify()
        assert report.ok and not report.projections
        ledger.rebuild()
        assert ledger.query("SELECT * FROM flows ORDER BY flow_id") == stored
