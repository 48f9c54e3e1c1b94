"""Projections: tables kept in step with the events, and rebuilt from them alone."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from ledger.records import ProjectionDiff, Record
from ledger.tx import Conn, Tx

EVENT_COLUMNS = "position, stream, version, type, data, recorded_at, idempotency_key, hash"


@runtime_checkable
class Projection(Protocol):
    """Tables derived from events, kept in the same transaction as each append.

    - `name`: unique among a ledger's projections (used in reports).
    - `tables`: every table the projection owns. `rebuild()` empties them (DELETE, so
      their schema and indexes stay) and replays all events; `verify()` compares their
      rows, as a multiset, with such a rebuild done in a savepoint that is rolled back.
    - `create(tx)`: create the tables and indexes if missing (idempotent: `CREATE ...
      IF NOT EXISTS`; `tx.dialect` says which database's DDL to use). Run by
      `Ledger.open` under the write lock; if none of `tables` existed before and the
      ledger holds events, the ledger replays them into this projection at once.
    - `apply(tx, record)`: called for EVERY appended event, in position order, inside
      the append's transaction (and during rebuilds). Filter cheaply (stream prefix,
      `record.type`) and write with `tx.execute` (portable SQL, see `ledger.tx`); never
      commit. An exception rolls back the append. It must depend on the events alone
      (no clock, no other projection's tables), so a rebuild reproduces the rows exactly.
    - optionally `apply_batch(tx, records)`: called instead of `apply` with each append's
      records (one stream, in order), so a projection can write a row once per append;
      the rows must end as `apply` of each record in turn leaves them (rebuilds use `apply`).
    """

    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> Sequence[str]: ...

    def create(self, tx: Tx) -> None: ...

    def apply(self, tx: Tx, record: Record) -> None: ...


def records(conn: Conn, after: int = 0, limit: int = -1) -> Iterator[Record]:
    """Stored events after position `after`, oldest first, as `Record`s (all if `limit` < 0)."""
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position"
    # (no LIMIT -1 for "all": PostgreSQL refuses a negative limit)
    rows = (
        conn.execute(sql + " LIMIT ?", (after, limit))
        if limit >= 0
        else conn.execute(sql, (after,))
    )
    for position, stream, version, type_, data, recorded_at, key, hash_ in rows:
        yield Record(position, stream, version, type_, data.encode(), recorded_at, key, hash_)


def clear(conn: Conn, projections: Iterable[Projection]) -> None:
    """Delete every row of the projections' tables (keeping their schema and indexes)."""
    for projection in projections:
        for table in projection.tables:
            conn.execute(f'DELETE FROM "{table}"')


def replay(conn: Conn, tx: Tx, projections: Sequence[Projection]) -> int:
    """Empty the projections' tables and apply every event to them (through `tx`, on `conn`)."""
    clear(conn, projections)
    applies = [projection.apply for projection in projections]
    count = 0
    for record in records(conn):
        for apply in applies:
            apply(tx, record)
        count += 1
    return count


def snapshot(
    select: Callable[[str], Iterable[Sequence[Any]]], projections: Iterable[Projection]
) -> dict[tuple[str, str], Counter[tuple[Any, ...]]]:
    """Every row of every projection table (read with `select`), as a multiset per table."""
    return {
        (projection.name, table): Counter(map(tuple, select(f'SELECT * FROM "{table}"')))
        for projection in projections
        for table in projection.tables
    }


def compare(
    before: dict[tuple[str, str], Counter[tuple[Any, ...]]],
    after: dict[tuple[str, str], Counter[tuple[Any, ...]]],
) -> list[ProjectionDiff]:
    """The tables whose rows differ between `before` (stored) and `after` (rebuilt)."""
    diffs = []
    for (name, table), stored in before.items():
        rebuilt = after[name, table]
        if stored != rebuilt:
            missing = sum((rebuilt - stored).values())
            unexpected = sum((stored - rebuilt).values())
            diffs.append(ProjectionDiff(name, table, missing, unexpected))
    return diffs
