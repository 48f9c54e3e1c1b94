"""Write transactions: one cross-process lock, `BEGIN IMMEDIATE`, and savepoints for nesting.

An append inside a transaction takes no savepoint of its own (two statements saved on
the hot path). Nothing it checks before writing needs undoing; if it fails after writing
part of its batch, the transaction is doomed: the enclosing savepoint's rollback (or the
outermost rollback) undoes the part, and any further use before that raises
`TransactionAborted`, so a half-written batch can never be committed.

`Transactional` also caches the chain tip and stream versions across this connection's
own transactions; `PRAGMA data_version` (checked right after `BEGIN IMMEDIATE`) tells
whether any other connection committed in between, and then the cache is dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from ledger.errors import TransactionAborted
from ledger.sqlite import WriteLock, sqlite3, translate

T = TypeVar("T")
_MAX_CACHED_STREAMS = 10_000


class Transactional:
    """The transaction state of one connection (the base of `Ledger`)."""

    def __init__(self, conn: sqlite3.Connection, lock: WriteLock, path: str) -> None:
        self._conn = conn
        self._lock = lock
        self._path = path
        self._depth = 0
        self._tip: tuple[int, str] | None = None
        self._versions: dict[str, int] = {}
        self._seen = -1
        self._partial = False  # set by a write once it has begun changing the database
        self._recorded_at: str | None = None  # the time every event of this transaction gets
        self._doomed: int | None = None  # the depth at which a part-written append failed

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """A write transaction; re-entrant (yields `self`, the ledger).

        The outermost block takes the cross-process write lock, runs `BEGIN IMMEDIATE`,
        and commits at its end. Inner blocks join it through a savepoint: an exception that
        leaves an inner block undoes that block's work; one that leaves the outermost
        rolls everything back.
        """
        if self._depth:
            yield from self._savepoint()
            return
        self._begin()
        try:
            yield self
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    def _join(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write inside the open transaction, dooming it if the write fails part-way."""
        self._check_doomed()
        if not self._conn.in_transaction:
            raise TransactionAborted("an earlier error in this transaction")
        self._partial = False
        try:
            return self._guarded(fn, *args)
        except BaseException:
            if self._partial:
                self._forget()
                self._doomed = self._depth
            raise
        finally:
            self._partial = False

    def _check_doomed(self) -> None:
        if self._doomed is not None:
            raise TransactionAborted("an append failed part-way and was not rolled back")

    def _guarded(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            typed = translate(exc, self._path)
            if typed is None:
                raise
            raise typed from exc

    def _begin(self) -> None:
        """Lock, `BEGIN IMMEDIATE`, and keep the cached tip only if no one else committed."""
        self._lock.acquire()
        try:
            self._guarded(self._conn.execute, "BEGIN IMMEDIATE")
            seen = self._guarded(self._conn.execute, "PRAGMA data_version").fetchone()[0]
        except BaseException:
            self._lock.release()
            raise
        if seen != self._seen or len(self._versions) > _MAX_CACHED_STREAMS:
            self._forget()
            self._seen = seen
        self._depth = 1

    def _forget(self) -> None:
        self._tip = None
        self._versions.clear()

    def _finish(self, exc: BaseException | None) -> None:
        """End the outermost transaction: commit, or roll back after `exc`; then unlock."""
        self._depth = 0
        self._recorded_at = None
        conn = self._conn
        if exc is None and self._doomed is not None:
            exc = TransactionAborted("an append failed part-way and was not rolled back")
            self._finish(exc)
            raise exc
        self._doomed = None
        try:
            if exc is not None:
                self._forget()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            elif not conn.in_transaction:
                self._forget()
                raise TransactionAborted("an error inside it")
            else:
                try:
                    self._guarded(conn.execute, "COMMIT")
                except BaseException:
                    self._forget()
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._lock.release()

    def _savepoint(self) -> Iterator[Self]:
        conn = self._conn
        if not conn.in_transaction:
            raise TransactionAborted("an earlier error in this transaction")
        self._check_doomed()
        name = f"ledger_{self._depth}"
        conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield self
        except BaseException:
            self._depth -= 1
            self._forget()
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                if self._doomed is not None and self._doomed > self._depth:
                    self._doomed = None  # the part-written append is undone
            raise
        self._depth -= 1
        self._check_doomed()
        conn.execute(f"RELEASE {name}")
