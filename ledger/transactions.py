"""One thread's connection and its write transactions: the lock, `BEGIN IMMEDIATE`, savepoints.

A `Session` is what a thread uses the ledger through (see `Ledger`): its own connection,
so threads never share SQLite objects, and its own transaction state. Writes from every
thread and process are serialised by the ledger's `WriteLock` taken before
`BEGIN IMMEDIATE`, so a check-then-act inside one transaction holds across all of them.

An append inside a transaction takes no savepoint of its own (two statements saved on
the hot path). Nothing it checks before writing needs undoing; if it fails after writing
part of its batch, the transaction is doomed: the enclosing savepoint's rollback (or the
outermost rollback) undoes the part, and any further use before that raises
`TransactionAborted`, so a half-written batch can never be committed.

A session also caches the chain tip and stream versions across its own transactions;
`PRAGMA data_version` (checked right after `BEGIN IMMEDIATE`) tells whether any other
connection committed in between, and then the cache is dropped.

Commit hooks (`after_commit`) run once the outermost transaction has committed and the
lock is released; the rollback of the block they were queued in (a savepoint, or the
whole transaction) runs their `on_rollback` instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ledger.errors import LockTimeout, ReadOnlyLedger, TransactionAborted
from ledger.sqlite import WAIT_NOTICE, LedgerDatabase, WaitHook, WriteLock, sqlite3, translate
from ledger.tx import SqliteTx

T = TypeVar("T")
Hook = Callable[[], None]
_MAX_CACHED_STREAMS = 10_000
_BUSY = 5  # SQLITE_BUSY


class Session:
    """One connection and its transaction state; used by one thread at a time."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        lock: WriteLock,
        path: str,
        *,
        busy_timeout: float,
        readonly: bool = False,
    ) -> None:
        self.conn = conn
        self.tx = SqliteTx(conn)  # what projections write through
        self.db = LedgerDatabase(conn)
        self.db.ledger_path = path
        self.lock = lock
        self.path = path
        self.busy_timeout = busy_timeout
        self.readonly = readonly
        self.on_wait: WaitHook | None = None
        self.check_tip: Callable[[Session], None] | None = None  # run when the tip is reloaded
        self.depth = 0
        self.owner = 0  # the thread whose transaction is open (while depth > 0)
        self.tip: tuple[int, str] | None = None
        self.versions: dict[str, int] = {}
        self._seen = -1
        self.partial = False  # set by a write once it has begun changing the database
        self.recorded_at: str | None = None  # the time every event of this transaction gets
        self._doomed: int | None = None  # the depth at which a part-written append failed
        self._hooks: list[tuple[int, Hook, Hook | None]] = []  # (depth queued at, commit, undo)

    @contextmanager
    def transaction(self, owner: T) -> Iterator[T]:
        """A write transaction yielding `owner`; re-entrant through savepoints."""
        if self.joinable():
            yield from self._savepoint(owner)
            return
        self.begin()
        try:
            yield owner
        except BaseException as exc:
            self.finish(exc)
            raise
        self.finish(None)

    def joinable(self) -> bool:
        """True if this thread has a transaction open here (so a write joins it).

        Only the in-memory ledger shares a session between threads; another thread's
        transaction is waited for (on the lock), never joined.
        """
        return bool(self.depth) and self.owner == threading.get_ident()

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """One consistent snapshot for several reads (a deferred transaction; no lock)."""
        if self.depth or self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def join(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a write inside the open transaction, dooming it if the write fails part-way."""
        self._check_doomed()
        if not self.conn.in_transaction:
            raise TransactionAborted("an earlier error in this transaction")
        self.partial = False
        try:
            return self.guarded(fn, *args)
        except BaseException:
            if self.partial:
                self.forget()
                self._doomed = self.depth
            raise
        finally:
            self.partial = False

    def after_commit(self, fn: Hook, on_rollback: Hook | None = None) -> None:
        """Run `fn` once this thread's transaction commits (at once if none is open).

        If the block it was queued in rolls back, `on_rollback` runs instead (if given).
        Hooks must not raise: they run after the commit, when nothing can be undone.
        """
        if not self.joinable():
            fn()
            return
        self._hooks.append((self.depth, fn, on_rollback))

    def _undo_hooks(self, above: int) -> None:
        """Run the rollback hooks of the blocks deeper than `above` (they were undone)."""
        undone = [hook for hook in self._hooks if hook[0] > above]
        self._hooks = [hook for hook in self._hooks if hook[0] <= above]
        _run(undone, committed=False)

    def guarded(self, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn`, translating SQLite's storage and guard failures into ledger errors."""
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            typed = translate(exc, self.path)
            if typed is None:
                raise
            raise typed from exc

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

    def forget(self) -> None:
        """Drop the cached tip and versions (another connection may have moved them)."""
        self.tip = None
        self.versions.clear()

    def finish(self, exc: BaseException | None) -> None:
        """End the outermost transaction: commit, or roll back after `exc`; then unlock."""
        self.depth = 0
        self.recorded_at = None
        conn = self.conn
        if exc is None and self._doomed is not None:
            exc = TransactionAborted("an append failed part-way and was not rolled back")
            self.finish(exc)
            raise exc
        self._doomed = None
        hooks, self._hooks, committed = self._hooks, [], False
        try:
            if exc is not None:
                self.forget()
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            elif not conn.in_transaction:
                self.forget()
                raise TransactionAborted("an error inside it")
            else:
                try:
                    self.guarded(conn.execute, "COMMIT")
                except BaseException:
                    self.forget()
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                committed = True
        finally:
            self.lock.release()
            _run(hooks, committed=committed)

    def close(self) -> None:
        """Roll back anything open and close the connection."""
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")
        self.conn.close()

    def _check_doomed(self) -> None:
        if self._doomed is not None:
            raise TransactionAborted("an append failed part-way and was not rolled back")

    def _savepoint(self, owner: T) -> Iterator[T]:
        conn = self.conn
        if not conn.in_transaction:
            raise TransactionAborted("an earlier error in this transaction")
        self._check_doomed()
        name = f"ledger_{self.depth}"
        conn.execute(f"SAVEPOINT {name}")
        self.depth += 1
        try:
            yield owner
        except BaseException:
            self.depth -= 1
            self.forget()
            if conn.in_transaction:
                conn.execute(f"ROLLBACK TO {name}")
                conn.execute(f"RELEASE {name}")
                if self._doomed is not None and self._doomed > self.depth:
                    self._doomed = None  # the part-written append is undone
                self._undo_hooks(self.depth)
            raise
        self.depth -= 1
        self._check_doomed()
        conn.execute(f"RELEASE {name}")
        depth = self.depth  # the released block's hooks now wait for the enclosing one
        self._hooks = [(min(d, depth), fn, undo) for d, fn, undo in self._hooks]


def _run(hooks: list[tuple[int, Hook, Hook | None]], *, committed: bool) -> None:
    for _, on_commit, on_rollback in hooks:
        hook = on_commit if committed else on_rollback
        if hook is not None:
            hook()
