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
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sqlite_utils import Database

if TYPE_CHECKING:
    import sqlite3 as sqlite3
else:
    from sqlite_utils.utils import sqlite3

from ledger.errors import (
    AppendOnlyViolation,
    DiskFull,
    LedgerError,
    LockTimeout,
    ReadOnlyLedger,
    StorageError,
)

GUARD_MESSAGE = "ledger events are append-only"
# SQLite's primary result codes (stable C API values; not every driver exports them).
_FULL, _READONLY = 13, 8
_STORAGE = {10, 11, 26, 14, 5, 15}  # IOERR, CORRUPT, NOTADB, CANTOPEN, BUSY, PROTOCOL


class WriteLock:
    """The write lock of one ledger file: a thread lock, then an advisory `flock`.

    `flock` locks belong to an open file description, not to a thread, so threads of one
    process queue on the thread lock first; processes (and other `Ledger` objects in this
    process, each with its own descriptor) queue on the `flock`. The holder writes its pid
    and command into the lock file, so a waiter can say whom it waits for. In-memory
    ledgers (`path` None) have the thread lock only.
    """

    def __init__(self, path: Path | None, label: str = "") -> None:
        self._fd = -1
        self._name = ":memory:" if path is None else str(path.with_suffix(""))
        self._threads = threading.Lock()
        stamp = f"{os.getpid()} {label or _command()}"[:_STAMP_SIZE].ljust(_STAMP_SIZE)
        self._stamp = stamp.encode()
        if path is not None:
            try:
                self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as exc:
                raise ReadOnlyLedger(str(path), f"cannot open its lock file ({exc})") from exc

    def acquire(self, timeout: float = -1, on_wait: WaitHook | None = None) -> None:
        """Block until this thread holds the lock; `LockTimeout` after `timeout` seconds.

        `on_wait(holder)` is called once if the wait passes `WAIT_NOTICE` seconds.
        """
        waiter = None  # made only if the lock is not free at once (the usual case is)
        if not self._threads.acquire(blocking=False):
            waiter = _Waiter(self._name, timeout, on_wait, _this_process)
            while not self._threads.acquire(timeout=waiter.slice()):
                waiter.tick()
        if self._fd < 0:
            return
        try:
            while not _try_flock(self._fd):
                if waiter is None:
                    waiter = _Waiter(self._name, timeout, on_wait, self.holder)
                waiter.holder = self.holder  # now the wait is for another process
                waiter.tick()
                time.sleep(waiter.pause())
            os.pwrite(self._fd, self._stamp, 0)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    @contextmanager
    def closing(self, timeout: float) -> Iterator[bool]:
        """For closing the ledger: this process's writers done (waiting up to `timeout`),
        then the file lock if it is free now (yields whether it is held); the lock file is
        closed at the end, while no thread of this process can be using it."""
        threads = self._threads.acquire(timeout=max(timeout, 0))
        try:
            held = self._fd >= 0 and _try_flock(self._fd)
            try:
                yield held or self._fd < 0
            finally:
                self.close()
        finally:
            if threads:
                self._threads.release()

    def holder(self) -> str:
        """Who last took the lock ("pid command"), as its lock file says; "" if unknown."""
        if self._fd < 0:
            return _this_process()
        try:
            return os.pread(self._fd, _STAMP_SIZE, 0).decode(errors="replace").strip()
        except OSError:
            return ""

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


WaitHook = Callable[[str], None]


def _this_process() -> str:
    return f"another thread of this process (pid {os.getpid()})"


WAIT_NOTICE = 1.0
"""Seconds a writer waits for the lock before its `on_wait` hook is told (once)."""
_STAMP_SIZE = 120


class _Waiter:
    """The bookkeeping of one wait: its deadline, the one notice, and the poll pause."""

    def __init__(
        self, name: str, timeout: float, on_wait: WaitHook | None, holder: Callable[[], str]
    ) -> None:
        self.name = name
        self.start = time.monotonic()
        self.deadline = None if timeout < 0 else self.start + timeout
        self.on_wait, self.holder = on_wait, holder
        self.delay = 0.0001

    def slice(self) -> float:
        """How long one blocking attempt may take before the next `tick`."""
        if self.deadline is None:
            return WAIT_NOTICE / 4
        return max(0.0, min(WAIT_NOTICE / 4, self.deadline - time.monotonic()))

    def pause(self) -> float:
        """The next pause between polls: doubling to 1 ms (a quick hand-over), 10 ms later."""
        cap = 0.001 if time.monotonic() - self.start < WAIT_NOTICE else 0.01
        self.delay = min(self.delay * 2, cap)
        return self.delay

    def tick(self) -> None:
        """Tell the hook once after `WAIT_NOTICE`; raise `LockTimeout` past the deadline."""
        now = time.monotonic()
        if self.on_wait is not None and now - self.start >= WAIT_NOTICE:
            self.on_wait(self.holder())
            self.on_wait = None
        if self.deadline is not None and now >= self.deadline:
            raise LockTimeout(self.name, now - self.start, self.holder())


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _command() -> str:
    return " ".join(Path(arg).name if i == 0 else arg for i, arg in enumerate(sys.argv[:4]))


def writable(path: Path) -> bool:
    """True if `path` may be written: permitted, and not marked read-only (even for root)."""
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & stat.S_IWUSR)


def connect(path: Path | None, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in explicit-transaction mode (`isolation_level=None`).

    Usable from any thread (the ledger gives each thread its own, and may close a dead
    thread's from another). Its busy timeout is short: a write waits for SQLite's lock in
    `begin`, which says why it waits and gives up at the ledger's own timeout.
    """
    if path is None:
        target, uri = ":memory:", False
    elif readonly:
        target, uri = f"file:{quote(str(path))}?mode=ro", True
    else:
        target, uri = str(path), False
    conn = sqlite3.connect(
        target, isolation_level=None, timeout=WAIT_NOTICE, uri=uri, check_same_thread=False
    )
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
