"""PostgreSQL plumbing (psycopg 3): connections, placeholder translation, error translation.

The ledger's own SQL and the projections' SQL are portable, with `?` (or `:name`)
placeholders; psycopg spells them `%s` / `%(name)s`, so `PgConn.execute` translates each
statement once (cached) and leaves string literals, quoted names and `::` casts alone.
Connections run in autocommit mode and the ledger sends BEGIN/COMMIT/SAVEPOINT itself,
as it does on SQLite, so the transaction logic is the same on both.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from ledger.errors import (
    AppendOnlyViolation,
    DiskFull,
    LedgerError,
    LockTimeout,
    StorageError,
    TransactionAborted,
    TransactionConflict,
)
from ledger.sqlite import GUARD_MESSAGE
from ledger.tx import Dialect, Params, Rows, Tx

_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|%|\?|:([A-Za-z_]\w*)")
# SQLSTATE classes that mean the server or the link failed, not the statement:
# connection exception, operator intervention (shutdown), system error (I/O), internal error.
_STORAGE_CLASSES = ("08", "57", "58", "XX", "53")
_RETRY = ("40001", "40P01")  # serialization failure, deadlock: the transaction is gone


@functools.cache
def pyformat(sql: str) -> str:
    """`sql` with `?` as `%s`, `:name` as `%(name)s`, and every `%` as `%%`.

    `?` and `:name` inside string literals and quoted names stay as they are.
    """

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1):
            return f"%({match.group(1)})s"
        return token.replace("%", "%%")  # a literal or quoted name (psycopg scans them too)

    return _TOKEN.sub(one, sql)


def translate(exc: psycopg.Error, path: str) -> LedgerError | None:
    """The typed ledger error for a psycopg failure, or None if it is a programming error."""
    state = exc.sqlstate or ""
    message = (exc.diag.message_primary or str(exc)).strip()
    if state == "P0001" and GUARD_MESSAGE in message:
        return AppendOnlyViolation(message)
    if state == "53100":
        return DiskFull(path, message)
    if state == "55P03":
        return LockTimeout(path, 0.0, "another transaction")
    if state in _RETRY:
        return TransactionConflict(message)
    if state == "25P02":
        return TransactionAborted(message)
    if state == "25006":
        return StorageError(path, f"the server is read-only ({message})")
    if state[:2] in _STORAGE_CLASSES or (not state and isinstance(exc, psycopg.OperationalError)):
        return StorageError(path, message or type(exc).__name__)
    return None


class PgConn:
    """A psycopg connection speaking the ledger's portable SQL (a `tx.Conn`).

    Statements whose result nothing reads (BEGIN, SAVEPOINT, RELEASE, a lock before its
    read) wait (`later`) and go in one pipeline with the next statement: one round trip
    for both. A failure among them is raised by that next statement.
    """

    __slots__ = ("_later", "path", "raw", "watch")

    def __init__(self, raw: psycopg.Connection[tuple[Any, ...]], path: str) -> None:
        self.raw = raw
        self.path = path
        self._later: list[str] = []
        self.watch: Callable[[str], None] | None = None  # shown each statement first, if set

    def later(self, sql: str) -> None:
        """Send `sql` (one statement, no parameters, no result wanted) with the next one."""
        self._later.append(sql)

    def flush(self) -> None:
        """Send what waits now (before using `raw` directly, e.g. for a COPY)."""
        if self._later:
            self._run("SELECT 1", None)

    def execute(self, sql: str, parameters: Params | None = None, /) -> Rows:
        """Run one statement (several, without parameters); typed errors for storage failures."""
        return self._run(sql, parameters)

    def rows(self, sql: str, parameters: Params | None = None) -> list[tuple[Any, ...]]:
        """The statement's rows ([] for one that returns none, e.g. an UPDATE)."""
        cursor = self._run(sql, parameters)
        return cursor.fetchall() if cursor.description is not None else []

    def last_row(self, script: str) -> Any:
        """Run several statements in one round trip; the first row of the last one's result."""
        cursor = self._run(script, None)
        while cursor.nextset():
            pass
        return cursor.fetchone()

    def _run(self, sql: str, parameters: Params | None) -> psycopg.Cursor[Any]:
        if self.watch is not None:
            self.watch(sql)
        raw = self.raw
        try:
            if self._later:
                waiting, self._later = self._later, []
                with raw.pipeline():
                    for statement in waiting:
                        raw.execute(statement)
                    if parameters:
                        return raw.execute(pyformat(sql), parameters)
                    if ";" not in sql:  # (a pipeline takes one statement at a time)
                        return raw.execute(sql)
            if parameters:
                return raw.execute(pyformat(sql), parameters)
            return raw.execute(sql)
        except psycopg.Error as exc:
            typed = translate(exc, self.path)
            if typed is None:
                raise
            raise typed from exc

    @property
    def in_transaction(self) -> bool:
        """True while a transaction is open and usable (a failed one is not), or a BEGIN waits."""
        status = self.raw.info.transaction_status
        return status == TransactionStatus.INTRANS or (
            status == TransactionStatus.IDLE and bool(self._later)
        )

    @property
    def open(self) -> bool:
        """True while the server holds a transaction for us, even a failed one (or will)."""
        return self.raw.info.transaction_status != TransactionStatus.IDLE or bool(self._later)

    def close(self) -> None:
        """Close the connection (the server rolls back anything open; nothing waiting is sent)."""
        self._later.clear()
        self.raw.close()


Late = Callable[[Callable[[Tx], None], Sequence[str]], None]


class PgTx:
    """A `Tx` on one PostgreSQL connection (placeholders translated by `PgConn`).

    `late` holds back what `at_commit` is given (the session's transaction); without
    it (a schema's set-up, a rebuild in scratch tables) that runs at once.
    """

    __slots__ = ("_late", "conn")
    dialect: Dialect = "postgresql"

    def __init__(self, conn: PgConn, late: Late | None = None) -> None:
        self.conn = conn
        self._late = late

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self.conn._run(sql, params).rowcount

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run one query; all its rows."""
        return self.conn.rows(sql, params)

    def at_commit(self, write: Callable[[Tx], None], tables: Sequence[str]) -> None:
        """See `Tx.at_commit`."""
        if self._late is None:
            write(self)
        else:
            self._late(write, tables)


def connect(dsn: str, path: str, settings: str) -> PgConn:
    """A new autocommit connection with the ledger's session `settings` (SET statements)."""
    try:
        raw: psycopg.Connection[tuple[Any, ...]] = psycopg.connect(dsn, autocommit=True)
    except psycopg.Error as exc:
        raise StorageError(path, f"cannot connect ({str(exc).strip()})") from exc
    conn = PgConn(raw, path)
    try:
        conn.execute(settings)
    except BaseException:
        raw.close()
        raise
    return conn
