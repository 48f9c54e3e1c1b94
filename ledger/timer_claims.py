"""Timer claims: leases on due flows, so that workers share the due timers between them.

`Ledger.claim_due` picks, in one short transaction of its own, the due rows of `flows`
(`due <= now`, by due, as `flows.query` orders them) that no unexpired lease holds, and
records a lease for each in `timer_leases (flow_id, owner, until)`. On PostgreSQL the pick
locks those rows `FOR UPDATE SKIP LOCKED` and the transaction takes no ledger lock, so
concurrent claimers take disjoint sets without waiting for one another; the lease upsert,
which sees the latest committed lease whatever the statement's snapshot, settles the one
overlap left (a rival claim that committed after this statement's snapshot was taken). On
SQLite, where writers are serialised, the same statements run in the ledger's write
transaction without the lock clause. Inside this thread's open transaction a claim joins
it, and its leases commit or roll back with it.

A lease whose `until` has passed (its claimer died) is claimable again. Leases compare
with the claimer's `now`: hosts' clocks must agree to well within a lease.

`timer_leases` is operational state (who is working on what), not a projection: nothing
in it derives from the events, so `verify`, `rebuild` and `copy_to` never see it. It is
created on the first claim (`CREATE TABLE IF NOT EXISTS`), never by opening a ledger, and
never on a read-only one (`ReadOnlyLedger`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from ledger.codec import utc_text
from ledger.errors import ReadOnlyLedger
from ledger.flows import COLUMNS, flow_row
from ledger.records import FlowRow
from ledger.tx import Tx

if TYPE_CHECKING:
    from ledger.transactions import Session

T = TypeVar("T")
TABLE = "timer_leases"
_CREATE = {
    "sqlite": f"CREATE TABLE IF NOT EXISTS {TABLE} (flow_id TEXT PRIMARY KEY,"
    " owner TEXT NOT NULL, until TEXT NOT NULL) STRICT, WITHOUT ROWID",
    "postgresql": f'CREATE TABLE IF NOT EXISTS {TABLE} (flow_id TEXT COLLATE "C" PRIMARY KEY,'
    ' owner TEXT NOT NULL, until TEXT COLLATE "C" NOT NULL)',
}
# Two creators at once on PostgreSQL can both fail the catalog's unique index: one at a time.
_CREATE_LOCK = f"SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.{TABLE}'))"
_EXISTS = f"SELECT to_regclass('{TABLE}') IS NOT NULL"
_PICK = (
    f"SELECT {COLUMNS} FROM flows f WHERE due IS NOT NULL AND due <= ? AND NOT EXISTS"
    f" (SELECT 1 FROM {TABLE} l WHERE l.flow_id = f.flow_id AND l.until > ?)"
    " ORDER BY due, started_position"
)
_ANY_DUE = "SELECT 1 FROM flows WHERE due IS NOT NULL AND due <= ? LIMIT 1"
_SKIP_LOCKED = " FOR UPDATE OF f SKIP LOCKED"
_LEASE = (
    f"INSERT INTO {TABLE} (flow_id, owner, until) VALUES {{rows}} ON CONFLICT (flow_id)"
    f" DO UPDATE SET owner = excluded.owner, until = excluded.until WHERE {TABLE}.until <= ?"
    " RETURNING flow_id"
)
_RELEASE = f"DELETE FROM {TABLE} WHERE owner = ? AND flow_id IN ({{ids}})"
_CHUNK = 100  # rows per statement (3 parameters each)


class TimerClaims:
    """`Ledger`'s timer claims (see the module docstring): mixed into `Ledger`."""

    if TYPE_CHECKING:

        @property
        def _s(self) -> Session: ...

    def claim_due(
        self, now: datetime, *, limit: int | None = None, lease: float, owner: str
    ) -> list[FlowRow]:
        """Lease to `owner` for `lease` seconds the flows due at `now` that no one holds.

        At most `limit` rows, by due time; what another claimer holds (or is claiming right
        now) is skipped, never waited for.
        """
        if lease <= 0:
            raise ValueError(f"lease must be a positive number of seconds, not {lease!r}")
        session = self._s
        if session.readonly:
            raise ReadOnlyLedger(session.path, "it was opened read-only")
        at = utc_text(now)
        if (limit is not None and limit < 1) or not _any_due(session, at):
            return []
        until = utc_text(now + timedelta(seconds=lease))
        return _alone(session, lambda tx: _claim(tx, at, until, limit, owner))

    def release_claims(self, flow_ids: Sequence[str], *, owner: str) -> int:
        """Drop `owner`'s leases on `flow_ids` (ones since taken by another stay); how many."""
        if not flow_ids:
            return 0
        ids = list(flow_ids)
        return _alone(self._s, lambda tx: _release(tx, ids, owner))


def _any_due(session: Session, now: str) -> bool:
    """Whether any flow is due, read without a transaction (inside one: that one).

    An idle poll then costs one read: no write lock on SQLite, one round trip on PostgreSQL.
    """
    return session.guarded(session.conn.execute, _ANY_DUE, (now,)).fetchone() is not None


def _claim(tx: Tx, now: str, until: str, limit: int | None, owner: str) -> list[FlowRow]:
    sql = _PICK if limit is None else f"{_PICK} LIMIT {int(limit)}"
    if tx.dialect == "postgresql":
        sql += _SKIP_LOCKED
    picked = [flow_row(values) for values in tx.query(sql, (now, now))]
    won: set[str] = set()
    for start in range(0, len(picked), _CHUNK):
        chunk = picked[start : start + _CHUNK]
        values = [value for row in chunk for value in (row.flow_id, owner, until)]
        sql = _LEASE.format(rows=", ".join(["(?, ?, ?)"] * len(chunk)))
        won.update(flow_id for (flow_id,) in tx.query(sql, [*values, now]))
    return [row for row in picked if row.flow_id in won]


def _release(tx: Tx, flow_ids: list[str], owner: str) -> int:
    released = 0
    for start in range(0, len(flow_ids), _CHUNK):
        chunk = flow_ids[start : start + _CHUNK]
        sql = _RELEASE.format(ids=", ".join(["?"] * len(chunk)))
        released += tx.execute(sql, [owner, *chunk])
    return released


def _alone(session: Session, work: Callable[[Tx], T]) -> T:
    """Run `work(tx)` in a transaction of its own (or this thread's open one).

    On PostgreSQL a plain one, without the ledger's write lock: row locks are all a claim
    needs, and waiting for every writer would serialise the claimers again.
    """
    if session.readonly:
        raise ReadOnlyLedger(session.path, "it was opened read-only")
    tx = session.tx

    def run() -> T:
        if tx.dialect == "sqlite":
            tx.execute(_CREATE["sqlite"])  # serialised by the write lock; a no-op once made
        elif not tx.query(_EXISTS)[0][0]:
            tx.query(_CREATE_LOCK)
            tx.execute(_CREATE["postgresql"])
        return work(tx)

    if session.joinable():
        return session.join(run)
    if tx.dialect == "sqlite":
        with session.transaction(session):
            return session.guarded(run)
    conn = session.conn
    if conn.in_transaction:
        raise ValueError("a timer claim inside reading(): leave the read snapshot first")
    conn.execute("BEGIN")
    try:
        result = run()
    except BaseException:
        session._rollback()
        raise
    conn.execute("COMMIT")
    return result
