"""`PostgresLedger`: the ledger on a PostgreSQL database (psycopg 3), behind `Ledger`.

Concurrency, first cut: every write transaction takes one transaction-scoped advisory
lock (`pg_advisory_xact_lock`) right after BEGIN, before its first read, so writers from
every thread, process and host are serialised as SQLite's are, and a check-then-act inside
`transaction()` holds. The global chain (positions, hashes) is written inside the
transaction; `UNIQUE (stream, version)` is the exactly-once backstop. Readers never take
the lock. Isolation is READ COMMITTED: under the lock every statement sees every earlier
commit. The lock is one per schema; finer locks (per flow, per webhook) would take
`lock_keys` of their own here, with the chain then built after commit by a sequencer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ledger import postgres_schema
from ledger.errors import LedgerError, LockTimeout, ReadOnlyLedger
from ledger.postgres import PgConn, PgTx, connect, translate
from ledger.projection import EVENT_COLUMNS, Projection
from ledger.schema import APPLICATION_ID
from ledger.store import Ledger, Synchronous
from ledger.transactions import Session
from ledger.tx import Conn, Dialect, Params, Tx

_COPY = f"COPY events ({EVENT_COLUMNS}) FROM STDIN"
_GUARDS = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass AND tgenabled <> 'D'"


class Writers:
    """This process's open write transactions, so `close` can wait for them to end."""

    def __init__(self) -> None:
        self._open = 0
        self._changed = threading.Condition()

    def enter(self) -> None:
        with self._changed:
            self._open += 1

    def leave(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    @contextlib.contextmanager
    def drained(self, timeout: float) -> Iterator[None]:
        """Held once no write transaction of this process is open (or `timeout` passed)."""
        with self._changed:
            self._changed.wait_for(lambda: self._open == 0, timeout=max(timeout, 0))
            yield


class PgSession(Session):
    """One psycopg connection and its transaction state; used by one thread at a time."""

    driver_error = psycopg.Error
    read_begin = "BEGIN ISOLATION LEVEL REPEATABLE READ"  # one snapshot for every read
    conn: PgConn

    def __init__(
        self, conn: PgConn, path: str, lock_key: tuple[int, int], writers: Writers, readonly: bool
    ) -> None:
        super().__init__(conn, PgTx(conn), path, readonly=readonly)
        self._writers = writers
        self._lock = "SELECT pg_advisory_xact_lock({}, {})".format(*lock_key)
        self._try_lock = "SELECT pg_try_advisory_xact_lock({}, {})".format(*lock_key)

    def translate(self, exc: Exception) -> LedgerError | None:
        """The typed ledger error for a psycopg failure (None: a programming error)."""
        return translate(exc, self.path) if isinstance(exc, psycopg.Error) else None

    def _open(self) -> bool:
        return self.conn.open

    def _unlock(self) -> None:
        self._writers.leave()  # the advisory lock itself ended with the transaction

    def begin(self, timeout: float | None = None) -> None:
        """BEGIN and the ledger's write lock, in one round trip; `timeout=0`: only if free.

        The cached tip and versions are dropped: another host may have written since.
        """
        if self.readonly:
            raise ReadOnlyLedger(self.path, "it was opened read-only")
        if self.depth == 0 and self._open():
            raise ValueError("a write inside reading(): leave the read snapshot first")
        self.forget()
        self._writers.enter()
        try:
            if timeout is not None and timeout <= 0:
                if not self.conn.last_row(f"BEGIN; {self._try_lock}")[0]:
                    raise LockTimeout(self.path, 0.0, "another transaction")
            else:  # the wait is bounded by the connection's lock_timeout (the busy timeout)
                self.conn.execute(f"BEGIN; {self._lock}")
        except BaseException:
            self._rollback()
            self._writers.leave()
            raise
        self.depth, self.owner = 1, threading.get_ident()


class PostgresLedger(Ledger):
    """The ledger in one schema of a PostgreSQL database; see the module docstring."""

    dialect: ClassVar[Dialect] = "postgresql"

    def __init__(
        self,
        first: PgConn,
        connector: Any,
        path: str,
        projections: Sequence[Projection],
        *,
        schema: str,
        lock_key: tuple[int, int],
        busy_timeout: float,
        readonly: bool = False,
    ) -> None:
        self.schema = schema
        self._lock_key = lock_key
        self._busy_timeout = busy_timeout
        self._writers = Writers()
        super().__init__(first, connector, path, projections, readonly=readonly)

    @classmethod
    def connect(
        cls,
        dsn: str,
        *,
        synchronous: Synchronous,
        projections: Sequence[Projection],
        busy_timeout: float,
        readonly: bool,
    ) -> PostgresLedger:
        """Connect to `dsn`, creating the ledger's tables in its schema if missing.

        `synchronous="NORMAL"` is `synchronous_commit = off`: a server crash may lose the
        last acknowledged commits, never corrupting anything (as NORMAL on SQLite).
        """
        path = redact(dsn)
        settings = (
            f"SET synchronous_commit = {'on' if synchronous == 'FULL' else 'off'}; "
            f"SET lock_timeout = {max(1, int(busy_timeout * 1000))}"
        )
        conn = connect(dsn, path, settings)
        try:
            schema, key = conn.execute(
                "SELECT current_schema(), hashtext(current_schema())"
            ).fetchone()
            version = postgres_schema.identify(conn, path)
            lock_key = (_signed(APPLICATION_ID), int(key))
            if readonly:
                postgres_schema.check_readable(conn, path, version, projections)
            elif postgres_schema.needs_setup(conn, version, projections):
                lock = "SELECT pg_advisory_xact_lock({}, {})".format(*lock_key)
                postgres_schema.setup(conn, path, lock, projections)
            return cls(
                conn,
                lambda: connect(dsn, path, settings),
                path,
                projections,
                schema=str(schema),
                lock_key=lock_key,
                busy_timeout=busy_timeout,
                readonly=readonly,
            )
        except BaseException:
            conn.close()
            raise

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-model query in portable SQL (see `Ledger.query`)."""
        session = self._s
        return session.guarded(session.conn.rows, sql, params)  # type: ignore[attr-defined]

    def _make_session(self, conn: PgConn) -> PgSession:
        return PgSession(conn, self.path, self._lock_key, self._writers, self.readonly)

    def _closing(self) -> contextlib.AbstractContextManager[None]:
        return self._writers.drained(self._busy_timeout)

    def _engine_version(self) -> str:
        return ""  # the report's engine field names SQLite's library; PostgreSQL has none

    @contextlib.contextmanager
    def _scratch(self, conn: Conn) -> Iterator[Tx]:
        """Temporary tables of the same names, shadowing the stored ones until rolled back.

        Inside a savepoint: `verify` may run inside a write transaction, which must find
        its own tables (and search_path) again afterwards.
        """
        pg = _pg(conn)
        path = sql.SQL("SET LOCAL search_path = pg_temp, {}").format(sql.Identifier(self.schema))
        pg.execute("SAVEPOINT ledger_scratch")
        try:
            pg.execute(path.as_string(pg.raw))
            yield PgTx(pg)
        finally:
            if pg.open:
                pg.execute("ROLLBACK TO ledger_scratch")
                pg.execute("RELEASE ledger_scratch")

    def _missing_guards(self, conn: Conn) -> list[str]:
        present = {row[0] for row in conn.execute(_GUARDS)}
        return [guard for guard in postgres_schema.GUARDS if guard not in present]

    def _insert_rows(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """`COPY ... FROM STDIN`: psycopg parsing a multi-row INSERT of 800 parameters costs
        more than the server inserting its rows (a copy of 10^5 events: ~10 s of 17)."""
        with _pg(conn).raw.cursor().copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)


def _pg(conn: Conn) -> PgConn:
    if not isinstance(conn, PgConn):
        raise TypeError(f"a PostgreSQL ledger was given a {type(conn).__name__}")
    return conn


def _signed(value: int) -> int:
    """`value` as a signed 32-bit int (advisory lock keys are int4)."""
    return value - (1 << 32) if value >= 1 << 31 else value


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and `Ledger.path`."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
