"""The portable seam: projections write through a `Tx`, read models query through the ledger."""

from __future__ import annotations

from pathlib import Path

from ledger_helpers import Balances, Deposited

from ledger import Ledger, Record, Tx


class _Recording:
    """A projection that notes what it was handed, and the rows its statements changed."""

    name = "recording"
    tables = ("seen",)

    def __init__(self) -> None:
        self.handed: list[type] = []
        self.changed: list[int] = []

    def create(self, tx: Tx) -> None:
        self.handed.append(type(tx))
        assert tx.dialect == "sqlite"
        tx.execute("CREATE TABLE IF NOT EXISTS seen (position INTEGER PRIMARY KEY)")

    def apply(self, tx: Tx, record: Record) -> None:
        self.handed.append(type(tx))
        self.changed.append(tx.execute("INSERT INTO seen VALUES (?)", (record.position,)))
        assert tx.query("SELECT count(*) FROM seen WHERE position <= ?", (record.position,))


def test_projections_get_a_tx_never_a_driver_connection(tmp_path: Path) -> None:
    recording = _Recording()
    with Ledger.open(tmp_path / "l.db", projections=[recording]) as ledger:
        ledger.append("account:a", [Deposited("a", 1), Deposited("a", 2)])
        ledger.rebuild()
        assert ledger.verify().ok
    assert recording.handed and {t.__name__ for t in recording.handed} == {"SqliteTx"}
    assert recording.changed == [1] * 6  # the appends', the rebuild's, verify's scratch rebuild's


def test_query_reads_the_open_transaction_and_the_last_commit_outside_it(tmp_path: Path) -> None:
    with Ledger.open(tmp_path / "l.db", projections=[Balances()]) as ledger:
        assert not ledger.in_transaction and ledger.dialect == "sqlite"
        with ledger.transaction():
            assert ledger.in_transaction
            ledger.append("account:a", [Deposited("a", 5)])
            assert ledger.query("SELECT amount FROM balances WHERE account = ?", ("a",)) == [(5,)]
        assert not ledger.in_transaction
        assert ledger.query("SELECT account, amount FROM balances") == [("a", 5)]
        with ledger.reading():
            assert ledger.query("SELECT count(*) FROM balances") == [(1,)]
