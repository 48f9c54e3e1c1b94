"""Appending, reading, versions, idempotency and transactions."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from ledger_helpers import SQLITE_ONLY, AnyAccountEvent, Deposited, Renamed, Withdrawn, state

from ledger import (
    ConcurrencyError,
    CorruptRecord,
    IdempotencyConflict,
    InvalidAppend,
    Ledger,
    Record,
    TransactionAborted,
    Tx,
)


def test_append_returns_new_version_and_read_decodes(ledger: Ledger) -> None:
    assert ledger.append("account:a", [Deposited("a", 5), Withdrawn("a", 2)]) == 2
    assert ledger.append("account:a", [Deposited("a", 1)], expected_version=2) == 3
    assert ledger.read("account:a", AnyAccountEvent) == [
        Deposited("a", 5),
        Withdrawn("a", 2),
        Deposited("a", 1),
    ]
    assert ledger.read("account:a", AnyAccountEvent, from_version=2) == [Deposited("a", 1)]
    assert ledger.version("account:a") == 3
    assert ledger.version("account:none") == 0
    assert ledger.read("account:none", AnyAccountEvent) == []


@SQLITE_ONLY
def test_type_column_is_the_tag_and_data_is_readable_json(ledger: Ledger) -> None:
    ledger.append("misc", [Deposited("a", 1), Renamed("x")])
    rows = ledger.db.execute("SELECT type, data, typeof(data) FROM events").fetchall()
    assert rows == [
        ("Deposited", '{"type":"Deposited","account":"a","amount":1}', "text"),
        ("account.renamed", '{"type":"account.renamed","title":"x"}', "text"),
    ]


def test_read_all_pages_after_and_limit(ledger: Ledger) -> None:
    ledger.append("s", [Deposited("a", n) for n in range(2500)])
    records = list(ledger.read_all(after=10, limit=1500))
    assert [r.position for r in records] == list(range(11, 1511))
    assert len(list(ledger.read_all())) == 2500
    assert list(ledger.read_all(after=2500)) == []
    first = next(ledger.read_all())
    assert isinstance(first, Record)
    assert (first.stream, first.version, first.type) == ("s", 1, "Deposited")
    assert msgspec.json.decode(first.data, type=Deposited) == Deposited("a", 0)


def test_wrong_expected_version_appends_nothing(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 1)])
    before = state(ledger)
    with pytest.raises(ConcurrencyError) as caught:
        ledger.append("account:a", [Deposited("a", 2)], expected_version=0)
    assert (caught.value.stream, caught.value.expected, caught.value.actual) == ("account:a", 0, 1)
    with pytest.raises(ConcurrencyError):
        ledger.append("account:new", [Deposited("a", 2)], expected_version=1)
    assert state(ledger) == before


def test_idempotent_repeat_returns_original_positions(ledger: Ledger) -> None:
    events = [Deposited("a", 1), Deposited("a", 2), Deposited("a", 3)]
    first = ledger.append_batch("account:a", events, idempotency_key="pay-1")
    ledger.append("account:a", [Withdrawn("a", 1)])  # an unkeyed append right after
    before = state(ledger)
    again = ledger.append_batch("account:a", events, idempotency_key="pay-1", expected_version=0)
    assert again.repeated and again.positions == first.positions == range(1, 4)
    assert again.version == 3
    assert ledger.append("account:a", events, idempotency_key="pay-1") == 3
    assert state(ledger) == before
    keys = [r.idempotency_key for r in ledger.read_all()]
    assert keys == ["pay-1", "pay-1\x1f2", "pay-1\x1f3", None]


@pytest.mark.parametrize(
    ("stream", "events", "expected"),
    [
        ("account:a", [Deposited("a", 1), Deposited("a", 2)], None),  # a prefix of the batch
        ("account:a", [Deposited("a", 1), Deposited("a", 2), Deposited("a", 4)], None),
        ("account:b", [Deposited("a", 1), Deposited("a", 2), Deposited("a", 3)], None),
        ("account:a", [Deposited("a", 1), Deposited("a", 2), Deposited("a", 3)], 1),
        ("account:a", [Deposited("a", 1), Deposited("a", 2), Deposited("a", 3)] * 2, None),
    ],
)
def test_same_key_different_content_conflicts(
    ledger: Ledger, stream: str, events: list[Any], expected: int | None
) -> None:
    ledger.append(
        "account:a",
        [Deposited("a", 1), Deposited("a", 2), Deposited("a", 3)],
        idempotency_key="pay-1",
    )
    ledger.append("account:a", [Deposited("a", 4)])
    before = state(ledger)
    with pytest.raises(IdempotencyConflict) as caught:
        ledger.append(stream, events, idempotency_key="pay-1", expected_version=expected)
    assert (caught.value.key, caught.value.stream, caught.value.position) == (
        "pay-1",
        "account:a",
        1,
    )
    assert state(ledger) == before


@pytest.mark.parametrize(
    ("stream", "events", "kwargs"),
    [
        ("", [Deposited("a", 1)], {}),
        ("s", Deposited("a", 1), {}),
        ("s", [{"not": "a struct"}], {}),
        ("s", [Deposited("a", 1)], {"expected_version": -1}),
        ("s", [Deposited("a", 1)], {"expected_version": "0"}),
        ("s", [Deposited("a", 1)], {"idempotency_key": ""}),
        ("s", [Deposited("a", 1)], {"idempotency_key": "bad\x1fkey"}),
        ("s", [], {"idempotency_key": "k"}),
    ],
)
def test_bad_appends_are_refused_before_writing(
    ledger: Ledger, stream: Any, events: Any, kwargs: dict[str, Any]
) -> None:
    ledger.append("s", [Deposited("a", 1)])
    before = state(ledger)
    with pytest.raises(InvalidAppend):
        ledger.append(stream, events, **kwargs)
    assert state(ledger) == before


def test_unencodable_event_is_refused(ledger: Ledger) -> None:
    class Holder(msgspec.Struct, tag=True):
        value: Any

    before = state(ledger)
    with pytest.raises(InvalidAppend, match="cannot encode"):
        ledger.append("s", [Deposited("a", 1), Holder(object())])
    assert state(ledger) == before


def test_empty_append_checks_the_version_and_writes_nothing(ledger: Ledger) -> None:
    ledger.append("s", [Deposited("a", 1)])
    before = state(ledger)
    assert ledger.append("s", [], expected_version=1) == 1
    with pytest.raises(ConcurrencyError):
        ledger.append("s", [], expected_version=0)
    assert state(ledger) == before


def test_undecodable_body_names_its_position(ledger: Ledger) -> None:
    ledger.append("s", [Deposited("a", 1), Renamed("x")])
    before = state(ledger)
    with pytest.raises(CorruptRecord) as caught:
        ledger.read("s", AnyAccountEvent)
    assert (caught.value.position, caught.value.stream, caught.value.version) == (2, "s", 2)
    assert "position 2" in str(caught.value)
    assert state(ledger) == before


def test_transaction_is_reentrant_and_commits_once(ledger: Ledger) -> None:
    outside = Ledger.open(ledger.path)  # another connection (and session) on the same ledger
    with ledger.transaction() as tx:
        assert tx is ledger
        ledger.append("account:a", [Deposited("a", 1)])
        with ledger.transaction():
            ledger.append("account:a", [Deposited("a", 2)], expected_version=1)
            assert ledger.version("account:a") == 2
        assert outside.count() == 0
    assert outside.count() == 2
    assert outside.query("SELECT amount FROM balances") == [(3,)]
    outside.close()


def test_exception_rolls_back_everything(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 1)])
    before = state(ledger)
    with pytest.raises(RuntimeError), ledger.transaction():
        ledger.append("account:a", [Deposited("a", 2)])
        with ledger.transaction():
            ledger.append("account:b", [Deposited("b", 2)])
        raise RuntimeError("handler failed")
    assert state(ledger) == before
    assert ledger.query("SELECT account, amount FROM balances") == [("a", 1)]
    assert ledger.append("account:a", [Deposited("a", 3)], expected_version=1) == 2
    assert ledger.verify().ok


def test_exception_in_inner_block_undoes_only_that_block(ledger: Ledger) -> None:
    with ledger.transaction():
        ledger.append("account:a", [Deposited("a", 1)])
        with pytest.raises(RuntimeError), ledger.transaction():
            ledger.append("account:a", [Deposited("a", 2)])
            raise RuntimeError("inner")
        ledger.append("account:b", [Deposited("b", 5)])
    assert [r.stream for r in ledger.read_all()] == ["account:a", "account:b"]
    assert [r.cursor for r in ledger.read_all()] == [1, 2]  # the global order: no gap
    assert ledger.verify().ok


def test_failed_append_inside_transaction_leaves_earlier_appends(ledger: Ledger) -> None:
    with ledger.transaction():
        ledger.append("s", [Deposited("a", 1)])
        with pytest.raises(ConcurrencyError):
            ledger.append("s", [Deposited("a", 2)], expected_version=5)
        ledger.append("s", [Deposited("a", 3)], expected_version=1)
    assert ledger.read("s", Deposited) == [Deposited("a", 1), Deposited("a", 3)]


def _fail_the_transaction(ledger: Ledger) -> None:
    """End the transaction from below, as the database does after some errors."""
    if ledger.dialect == "sqlite":
        ledger.db.conn.execute("ROLLBACK")  # as SQLite does itself after some errors
        return
    with pytest.raises(Exception, match="division by zero"):
        ledger.query("SELECT 1 / 0")  # PostgreSQL fails the transaction on any error


def test_use_after_sqlite_aborted_the_transaction_is_refused(ledger: Ledger) -> None:
    before = state(ledger)
    with pytest.raises(TransactionAborted), ledger.transaction():
        ledger.append("s", [Deposited("a", 1)])
        _fail_the_transaction(ledger)
        ledger.append("s", [Deposited("a", 2)])
    assert state(ledger) == before
    assert ledger.append("s", [Deposited("a", 3)]) == 1


def test_memory_ledger_behaves_alike() -> None:
    with Ledger.memory() as ledger:
        ledger.append("s", [Deposited("a", 1)], idempotency_key="k")
        assert ledger.append("s", [Deposited("a", 1)], idempotency_key="k") == 1
        assert ledger.read("s", Deposited) == [Deposited("a", 1)]
        assert ledger.verify().ok


class _RefusesBigWithdrawals:
    """A projection whose `apply` fails on the second event of a batch."""

    name = "refuses"
    tables = ("refusals",)

    def create(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS refusals (n INTEGER)")

    def apply(self, tx: Tx, record: Record) -> None:
        if record.type == "Withdrawn" and msgspec.json.decode(record.data)["amount"] > 100:
            raise ValueError("too big")


def test_a_part_written_append_dooms_the_transaction(tmp_path: Any) -> None:
    with Ledger.open(tmp_path / "l.db", projections=[_RefusesBigWithdrawals()]) as ledger:
        before = state(ledger)
        with pytest.raises(TransactionAborted), ledger.transaction():
            ledger.append("s", [Deposited("a", 1)])
            with pytest.raises(ValueError):
                ledger.append("s", [Deposited("a", 2), Withdrawn("a", 500)])
            ledger.append("s", [Deposited("a", 3)])  # refused: half a batch is written
        assert state(ledger) == before


def test_a_savepoint_around_a_part_written_append_undoes_it(tmp_path: Any) -> None:
    with Ledger.open(tmp_path / "l.db", projections=[_RefusesBigWithdrawals()]) as ledger:
        with ledger.transaction():
            ledger.append("s", [Deposited("a", 1)])
            with pytest.raises(ValueError), ledger.transaction():
                ledger.append("s", [Deposited("a", 2), Withdrawn("a", 500)])
            ledger.append("s", [Deposited("a", 3)])
        assert ledger.read("s", AnyAccountEvent) == [Deposited("a", 1), Deposited("a", 3)]
        assert ledger.verify().ok
