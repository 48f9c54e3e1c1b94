"""`Tx`: the portable transaction a projection reads and writes through, on any backend.

Projections never see a driver connection. They write portable SQL with `?` (or
`:name`) placeholders; a backend whose driver spells them otherwise translates them.
DDL differs between databases, so `create` may ask `tx.dialect` which one it is on.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

Params = Sequence[Any] | Mapping[str, Any]
Dialect = Literal["sqlite", "postgresql"]


class Rows(Protocol):
    """What a driver's `execute` returns: a cursor over the statement's rows."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The connection the ledger's own portable SQL runs on (`?` placeholders).

    A `sqlite3.Connection` is one as it is; the PostgreSQL backend wraps psycopg's
    connection to translate placeholders. Shared code (reads, the chain walk, the
    idempotent-repeat lookup) is written against this, never against a driver.
    """

    def execute(self, sql: str, parameters: Any = ..., /) -> Rows: ...

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open and usable (not failed)."""
        ...

    def close(self) -> None: ...


class Tx(Protocol):
    """Statements inside the ledger's open transaction (never commit through it)."""

    @property
    def dialect(self) -> Dialect: ...

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        ...

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run one query; all its rows."""
        ...

    def at_commit(self, write: Callable[[Tx], None], tables: Sequence[str]) -> None:
        """Run `write(tx)` in this transaction as late as it can: just before it commits,
        or before the first statement since that names one of `tables` (so reads see it).

        For writes to rows many transactions change (a SKU's stock counts): where writers
        run at once, a changed row stays locked until the commit, so the later the write,
        the shorter the wait of the others. Dropped with the savepoint it was queued in if
        that rolls back.
        """
        ...


class SqliteTx:
    """A `Tx` on one sqlite3 connection (SQLite takes the placeholders as written)."""

    __slots__ = ("conn",)
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self.conn.execute(sql, params).rowcount

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run one query; all its rows."""
        return self.conn.execute(sql, params).fetchall()

    def at_commit(self, write: Callable[[Tx], None], tables: Sequence[str]) -> None:
        """At once: SQLite's writers take turns, so no one waits on a row (see `Tx`)."""
        write(self)
