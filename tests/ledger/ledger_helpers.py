"""Events, a projection and checks shared by the ledger tests (imported, not collected)."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from flowlib.log import FlowStarted, StepPending, stream_of
from ledger import Ledger, Record, Tx

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SQLITE_ONLY = pytest.mark.parametrize("target", ["sqlite"], indirect=True)
"""For a test of SQLite specifics that takes the `ledger` (or `target`) fixture."""


class Deposited(msgspec.Struct, frozen=True, tag=True):
    account: str
    amount: int


class Withdrawn(msgspec.Struct, frozen=True, tag=True):
    account: str
    amount: int


class Renamed(msgspec.Struct, frozen=True, tag="account.renamed"):
    title: str


AnyAccountEvent = Deposited | Withdrawn


class Balances:
    """A projection of `account:` streams into `balances(account, amount)`."""

    name = "balances"
    tables = ("balances",)

    def __init__(self) -> None:
        self._decode = msgspec.json.Decoder(AnyAccountEvent).decode
        self.fail_on: int | None = None

    def create(self, tx: Tx) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS balances (account TEXT PRIMARY KEY, amount INTEGER)")

    def apply(self, tx: Tx, record: Record) -> None:
        if not record.stream.startswith("account:"):
            return
        if self.fail_on is not None and record.position == self.fail_on:
            raise RuntimeError(f"projection failed at {record.position}")
        event = self._decode(record.data)
        delta = event.amount if isinstance(event, Deposited) else -event.amount
        tx.execute(
            "INSERT INTO balances (account, amount) VALUES (?, ?) "
            "ON CONFLICT (account) DO UPDATE SET amount = balances.amount + excluded.amount",
            (event.account, delta),
        )


def state(ledger: Ledger) -> tuple[tuple[int, str], int]:
    """The chain head and the event count: equal before and after means nothing changed."""
    return ledger.head(), ledger.count()


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection (autocommit), as a tamperer would use."""
    return sqlite3.connect(path, isolation_level=None)


def tamper(path: Path, *statements: str, keep_guards: bool = False) -> None:
    """Change the file behind the ledger's back (through SQLite), as an attacker would.

    The append-only triggers are dropped first (and put back with `keep_guards`, so only
    the hash chain can tell).
    """
    conn = raw(path)
    guards = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    conn.execute("DROP TRIGGER IF EXISTS events_refuse_update")
    conn.execute("DROP TRIGGER IF EXISTS events_refuse_delete")
    for statement in statements:
        conn.execute(statement)
    if keep_guards:
        for (sql,) in guards:
            conn.execute(sql)
    conn.close()


def arm(ledger: Ledger, due: dict[str, datetime | None]) -> None:
    """Start a flow per id, waiting on a timer due then (None: waiting on nothing timed)."""
    body = msgspec.Raw(b"{}")
    with ledger.transaction():
        for flow_id, at in due.items():
            started = FlowStarted(flow_id=flow_id, name="nap", version=1, args=body, started_at=T0)
            pending = StepPending(
                seq=0, request=body, mode="await", status="waiting", awaits=["Timer"], due=at
            )
            ledger.append(stream_of(flow_id), [started, pending], expected_version=0)


def leases(ledger: Ledger) -> dict[str, tuple[str, str]]:
    """The lease table as {flow_id: (owner, until)}."""
    rows = ledger.query("SELECT flow_id, owner, until FROM timer_leases")
    return {flow_id: (owner, until) for flow_id, owner, until in rows}


def has_table(ledger: Ledger, name: str) -> bool:
    """Whether the ledger's database (its schema, on PostgreSQL) has table `name`."""
    if ledger.dialect == "sqlite":
        sql = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = (
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = ?"
        )
    return bool(ledger.query(sql, (name,))[0][0])
