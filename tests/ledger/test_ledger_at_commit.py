"""`Tx.at_commit`: a projection's write to a busy row, held back until the commit.

On PostgreSQL the write runs just before COMMIT (or before a statement that names its
table), so the row it changes is locked for the commit alone; on SQLite it runs at once.
Either way the committed tables are the same: a write is kept exactly when the block it
was queued in is kept.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from backends import Targets
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import Deposited

from ledger import Ledger, Record, Tx

pytestmark = pytest.mark.both_backends


class LateTally:
    """`tally(account, amount)`: each deposit added at the commit (`Tx.at_commit`)."""

    name = "tally"
    tables = ("tally",)

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(Deposited).decode

    def create(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS tally (account TEXT PRIMARY KEY, amount INTEGER)")

    def apply(self, tx: Tx, record: Record) -> None:
        event = self._decode(record.data)

        def write(late: Tx) -> None:
            late.execute(
                "INSERT INTO tally (account, amount) VALUES (?, ?) ON CONFLICT (account)"
                " DO UPDATE SET amount = tally.amount + excluded.amount",
                (event.account, event.amount),
            )

        tx.at_commit(write, self.tables)


def tally(ledger: Ledger) -> dict[str, int]:
    return dict(ledger.query("SELECT account, amount FROM tally"))


class Undone(Exception):
    """Raised to roll a block back."""


def test_a_late_write_is_committed_and_seen_by_a_read_inside_the_transaction(
    targets: Targets,
) -> None:
    with Ledger.open(targets.new(), projections=[LateTally()]) as ledger:
        with ledger.transaction():
            ledger.append("account:a", [Deposited("a", 5)])
            ledger.append("account:b", [Deposited("b", 1)])
            assert tally(ledger) == {"a": 5, "b": 1}  # a read naming the table comes after it
            ledger.append("account:a", [Deposited("a", 2)])
        assert tally(ledger) == {"a": 7, "b": 1}
        with pytest.raises(Undone), ledger.transaction():
            ledger.append("account:a", [Deposited("a", 100)])
            raise Undone
        assert tally(ledger) == {"a": 7, "b": 1}
        assert ledger.verify().ok


def test_a_savepoint_that_rolls_back_drops_only_its_own_late_writes(targets: Targets) -> None:
    with Ledger.open(targets.new(), projections=[LateTally()]) as ledger:
        with ledger.transaction():
            ledger.append("account:a", [Deposited("a", 1)])  # queued before the savepoint
            with pytest.raises(Undone), ledger.transaction():
                ledger.append("account:a", [Deposited("a", 10)])
                raise Undone
            with ledger.transaction():
                ledger.append("account:a", [Deposited("a", 100)])  # kept with its savepoint
        assert tally(ledger) == {"a": 101}
        assert ledger.verify().ok


def test_a_verify_inside_the_transaction_keeps_what_waits_for_the_commit(
    targets: Targets,
) -> None:
    """verify rebuilds into scratch tables of the same names: a late write must not land
    there (and be rolled back with them)."""
    with Ledger.open(targets.new(), projections=[LateTally()]) as ledger:
        with ledger.transaction():
            ledger.append("account:a", [Deposited("a", 3)])
            assert ledger.verify().ok
            ledger.append("account:a", [Deposited("a", 4)])
        assert tally(ledger) == {"a": 7}
        assert ledger.verify().ok


Block = list[Any]  # each item: an amount to deposit, or (rolls back?, a nested block)
blocks = st.recursive(
    st.lists(st.integers(1, 9), max_size=3),
    lambda inner: st.lists(
        st.one_of(st.integers(1, 9), st.tuples(st.booleans(), inner)), max_size=4
    ),
    max_leaves=12,
)


def _run(ledger: Ledger, account: str, block: Block) -> int:
    """Run `block` in a (nested) transaction; the sum of the deposits it keeps."""
    kept = 0
    for item in block:
        if isinstance(item, int):
            ledger.append(f"account:{account}", [Deposited(account, item)])
            kept += item
            continue
        undone, inner = item
        try:
            with ledger.transaction():
                inside = _run(ledger, account, inner)
                if undone:
                    raise Undone
            kept += inside
        except Undone:
            pass
    return kept


def test_for_all_nestings_a_late_write_is_kept_exactly_when_its_block_is(
    targets: Targets,
) -> None:
    with Ledger.open(targets.new(), projections=[LateTally()]) as ledger:
        accounts = iter(range(10**6))

        @settings(max_examples=targets.examples(60), deadline=None)
        @given(program=blocks, outer_undone=st.booleans())
        def check(program: Block, outer_undone: bool) -> None:
            account = f"x{next(accounts)}"
            kept = _run(ledger, account, [(outer_undone, program)])
            assert tally(ledger).get(account, 0) == kept
            amounts = [e.amount for e in ledger.read(f"account:{account}", Deposited)]
            assert sum(amounts) == kept

        check()
        assert ledger.verify().ok  # the tables rebuilt from the events are the same
