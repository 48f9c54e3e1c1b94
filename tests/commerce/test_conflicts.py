"""A shop operation whose transaction loses a race is run again, never half-kept (PostgreSQL).

Without a global lock, two PostgreSQL transactions can deadlock or (a lock taken after a
first write) be refused as `TransactionConflict`; the whole transaction is rolled back, so
the operation (a settle, a cancel, a review, a start) runs again from the top. Here the
conflict is a real one, made on the server.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec
import pytest
from pg import fresh_schema

from commerce.conflicts import again_on_conflict
from ledger import Ledger, TransactionConflict


class Deposited(msgspec.Struct, tag=True):
    account: str
    amount: int


@pytest.fixture
def two() -> Iterator[tuple[Ledger, Ledger]]:
    """Two ledgers on one fresh schema; the second has written `account:s` once."""
    with fresh_schema() as dsn, Ledger.open(dsn) as ledger, Ledger.open(dsn) as other:
        other.append("account:s", [Deposited("s", 0)])
        yield ledger, other


def test_an_operation_that_conflicts_is_run_again_whole(two: tuple[Ledger, Ledger]) -> None:
    ledger, other = two
    attempts: list[int] = []

    def operation() -> str:
        with ledger.transaction():
            ledger.append("account:x", [Deposited("x", len(attempts))])  # writes first
            if not attempts:
                other.append("account:s", [Deposited("s", 1)])  # a younger commit
            attempts.append(1)
            ledger.append("account:s", [Deposited("s", 2)])  # refused the first time
        return "done"

    assert again_on_conflict(ledger, operation) == "done"
    assert len(attempts) == 2
    assert [e.amount for e in ledger.read("account:x", Deposited)] == [1]  # once, kept
    assert [e.amount for e in ledger.read("account:s", Deposited)] == [0, 1, 2]
    assert ledger.verify().ok


def test_a_conflict_inside_the_callers_transaction_is_theirs_to_retry(
    two: tuple[Ledger, Ledger],
) -> None:
    ledger, other = two
    runs: list[int] = []

    def operation() -> None:
        runs.append(1)
        ledger.append("account:s", [Deposited("s", 2)])

    with pytest.raises(TransactionConflict), ledger.transaction():
        ledger.append("account:x", [Deposited("x", 1)])
        other.append("account:s", [Deposited("s", 1)])
        again_on_conflict(ledger, operation)
    assert runs == [1]
    assert ledger.read("account:x", Deposited) == []
