"""A settle whose transaction loses a race is run again, never half-kept (PostgreSQL).

Without a global lock, two PostgreSQL transactions can deadlock or (a lock taken after a
first write) be refused as `TransactionConflict`; the whole transaction is rolled back, so
the settler runs the decision again. Here the conflict is a real one, made on the server.
"""

from __future__ import annotations

import msgspec
import pytest
from pg import fresh_schema

from commerce import FakeProvider, Shop
from ledger import Ledger, TransactionConflict


class Deposited(msgspec.Struct, tag=True):
    account: str
    amount: int


def test_a_settle_decision_that_conflicts_is_run_again_whole() -> None:
    with (
        fresh_schema() as dsn,
        Shop.open(dsn, provider=FakeProvider()) as shop,
        Ledger.open(dsn) as other,
    ):
        ledger = shop.ledger
        other.append("account:s", [Deposited("s", 0)])
        attempts: list[int] = []

        def decide() -> str:
            with ledger.transaction():
                ledger.append("account:x", [Deposited("x", len(attempts))])  # writes first
                if not attempts:
                    other.append("account:s", [Deposited("s", 1)])  # a younger commit
                attempts.append(1)
                ledger.append("account:s", [Deposited("s", 2)])  # refused the first time
            return "decided"

        assert shop.settler._once(decide) == "decided"
        assert len(attempts) == 2
        assert [e.amount for e in ledger.read("account:x", Deposited)] == [1]  # once, kept
        assert [e.amount for e in ledger.read("account:s", Deposited)] == [0, 1, 2]
        assert ledger.verify().ok


def test_a_conflict_inside_the_callers_transaction_is_theirs_to_retry() -> None:
    with (
        fresh_schema() as dsn,
        Shop.open(dsn, provider=FakeProvider()) as shop,
        Ledger.open(dsn) as other,
    ):
        ledger = shop.ledger
        other.append("account:s", [Deposited("s", 0)])

        def decide() -> None:
            ledger.append("account:s", [Deposited("s", 2)])

        with pytest.raises(TransactionConflict), ledger.transaction():
            ledger.append("account:x", [Deposited("x", 1)])
            other.append("account:s", [Deposited("s", 1)])
            shop.settler._once(decide)
        assert ledger.read("account:x", Deposited) == []
