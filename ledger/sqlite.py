"""SQLite plumbing: the cross-process write lock, connections, and error translation.

Every write transaction and every checkpoint runs under one advisory `flock` on
`<ledger>.lock`, so across all processes only one connection writes or checkpoints at a
time. That sidesteps the WAL-reset corruption bug of SQLite before 3.51.3 (it needs two
connections writing or checkpointing at once), and it makes writers queue on the lock
instead of failing with "database is locked".

The SQLite library is the one sqlite-utils uses: `pysqlite3` when it is installed
(`pip install pysqlite3-binary` brings a current SQLite, e.g. 3.51.3+ with the WAL-reset fix),
else the standard library's `sqlite3`. `Ledger.sqlite_version` (and `verify()`) report it.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

if TYPE_CHECKING:
    import sqlite3 as sqlite3
else:
    from sqlite_utils.utils import sqlite3

from ledger.errors import (
    AppendOnlyViolation,
    DiskFull,
    LedgerError,
    ReadOnlyLedger,
    StorageError,
)

GUARD_MESSAGE = "ledger events are append-only"
# SQLite's primary result codes (stable C API values; not every driver exports them).
_FULL, _READONLY = 13, 8
_STORAGE = {10, 11, 26, 14, 5, 15}  # IOERR, CORRUPT, NOTADB, CANTOPEN, BUSY, PROTOCOL


class WriteLock:
    """An exclusive advisory lock on a sidecar file; a no-op for in-memory ledgers."""

    def __init__(self, path: Path | None) -> None:
        self._fd = -1
        if path is not None:
            try:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise ReadOnlyLedger(str(path), f"cannot open its lock file ({exc})") from exc

    def acquire(self) -> None:
        """Block until this process holds the lock."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __enter__(self) -> WriteLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def close(self) -> None:
        """Close the lock file (which also releases the lock)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def writable(path: Path) -> bool:
    """True if `path` may be written: permitted, and not marked read-only (even for root)."""
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & stat.S_IWUSR)


def connect(path: Path | None, busy_timeout: float) -> sqlite3.Connection:
    """A connection in explicit-transaction mode (`isolation_level=None`)."""
    target = ":memory:" if path is None else str(path)
    conn = sqlite3.connect(target, isolation_level=None, timeout=busy_timeout)
    conn.execute("PRAGMA recursive_triggers = ON")
    return conn


def translate(exc: sqlite3.Error, path: str) -> LedgerError | None:
    """The typed ledger error for a SQLite failure, or None if it is a programming error."""
    message = str(exc)
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if GUARD_MESSAGE in message:
        return AppendOnlyViolation(message)
    if code == _FULL or "database or disk is full" in message:
        return DiskFull(path, message)
    if code == _READONLY:
        return StorageError(path, f"the file is read-only ({message})")
    if code in _STORAGE:
        return StorageError(path, message)
    return None


class LedgerDatabase(Database):
    """sqlite-utils' `Database`, raising typed ledger errors (e.g. on UPDATE of an event)."""

    ledger_path: str = ":memory:"

    def execute(self, sql: str, parameters: Any = None) -> sqlite3.Cursor:
        """Run `sql` as sqlite-utils does, translating storage and guard failures."""
        try:
            return super().execute(sql, parameters)
        except sqlite3.Error as exc:
            typed = translate(exc, self.ledger_path)
            if typed is None:
                raise
            raise typed from exc

    def executescript(self, sql: str) -> sqlite3.Cursor:
        """Run a script, translating storage and guard failures."""
        try:
            return super().executescript(sql)
        except sqlite3.Error as exc:
            typed = translate(exc, self.ledger_path)
            if typed is None:
                raise
            raise typed from exc
