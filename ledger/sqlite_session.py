"""A thread's SQLite session: the write lock, `BEGIN IMMEDIATE`, and the tip cache.

Writes from every thread and process are serialised by the ledger's `WriteLock` taken
before `BEGIN IMMEDIATE`, so a check-then-act inside one transaction holds across all of
them. The chain tip and stream versions stay cached across this session's transactions:
`PRAGMA data_version` (checked right after `BEGIN IMMEDIATE`) tells whether any other
connection committed in between, and then the cache is dropped.
"""

from __future__ import annotations

import threading
import time

from ledger.errors import LedgerError, LockTimeout, ReadOnlyLedger
from ledger.sqlite import WAIT_NOTICE, LedgerDatabase, WriteLock, sqlite3, translate
from ledger.transactions import Session
from ledger.tx import SqliteTx

_MAX_CACHED_STREAMS = 10_000
_BUSY = 5  # SQLITE_BUSY


class SqliteSession(Session):
    """One sqlite3 connection and its transaction state; used by one thread at a time."""

    driver_error = sqlite3.Error
    conn: sqlite3.Connection

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: WriteLock,
        path: str,
        *,
        busy_timeout: float,
        readonly: bool = False,
    ) -> None:
        super().__init__(conn, SqliteTx(conn), path, readonly=readonly)
        self.db = LedgerDatabase(conn)
        self.db.ledger_path = path
        self.lock = lock
        self.busy_timeout = busy_timeout
        self._seen = -1

    def translate(self, exc: Exception) -> LedgerError | None:
        """The typed ledger error for a SQLite failure (None: a programming error)."""
        return translate(exc, self.path) if isinstance(exc, sqlite3.Error) else None

    def _unlock(self) -> None:
        self.lock.release()

    def begin(self, timeout: float | None = None) -> None:
        """Lock, `BEGIN IMMEDIATE`, and keep the cached tip only if no one else committed.

        Waits at most `timeout` seconds (default: the busy timeout), else `LockTimeout`.
        """
        if self.readonly:
            raise ReadOnlyLedger(self.path, "it was opened read-only")
        if self.depth == 0 and self.conn.in_transaction:
            raise ValueError("a write inside reading(): leave the read snapshot first")
        started = time.monotonic()
        timeout = self.busy_timeout if timeout is None else timeout
        self.lock.acquire(timeout, self.on_wait)
        try:
            self._begin_immediate(started, timeout)
            seen = self.guarded(self.conn.execute, "PRAGMA data_version").fetchone()[0]
            if seen != self._seen or len(self.versions) > _MAX_CACHED_STREAMS:
                self.forget()
                if self.check_tip is not None:
                    self.check_tip(self)
                self._seen = seen  # only once the tip passed: a broken one is checked again
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            self.lock.release()
            raise
        self.depth, self.owner = 1, threading.get_ident()

    def _begin_immediate(self, started: float, timeout: float) -> None:
        """`BEGIN IMMEDIATE`, waiting out a writer outside orderflow (it holds no lock of ours)."""
        if timeout <= 0:  # one try: SQLite's own busy wait would not be "no wait"
            self.conn.execute("PRAGMA busy_timeout = 0")
            try:
                self._begin_immediate_once(started)
            finally:
                self.conn.execute(f"PRAGMA busy_timeout = {int(WAIT_NOTICE * 1000)}")
            return
        told = False
        while True:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", _BUSY) & 0xFF != _BUSY:
                    typed = translate(exc, self.path)
                    if typed is None:
                        raise
                    raise typed from exc
                waited = time.monotonic() - started
                if waited >= timeout:
                    holder = "a connection outside orderflow"
                    raise LockTimeout(self.path, waited, holder) from exc
                if not told and self.on_wait is not None and waited >= WAIT_NOTICE:
                    self.on_wait("a connection outside orderflow")
                    told = True

    def _begin_immediate_once(self, started: float) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            typed = translate(exc, self.path)
            if getattr(exc, "sqlite_errorcode", _BUSY) & 0xFF == _BUSY:
                waited = time.monotonic() - started
                raise LockTimeout(self.path, waited, "a connection outside orderflow") from exc
            if typed is None:
                raise
            raise typed from exc
