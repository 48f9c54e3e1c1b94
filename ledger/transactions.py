"""One thread's connection and its transactions: re-entrant blocks, savepoints, commit hooks.

A `Session` is what a thread uses the ledger through (see `Ledger`): its own connection,
so threads never share driver objects, and its own transaction state. This module is
backend-neutral; a backend's session (`SqliteSession`, `PgSession`) says how the outermost
transaction begins (and which lock serialises writers), and how its driver's errors map
onto the ledger's. Savepoints and COMMIT/ROLLBACK are the same SQL on every backend.

An append inside a transaction takes no savepoint of its own (two statements saved on
the hot path). Nothing it checks before writing needs undoing; if it fails after writing
part of its batch, the transaction is doomed: the enclosing savepoint's rollback (or the
outermost rollback) undoes the part, and any further use before that raises
`TransactionAborted`, so a half-written batch can never be committed.

A session caches the chain tip and stream versions inside its write transaction (no other
writer can move them while it holds the write lock); a backend may keep them across
transactions when it can tell no one else committed in between.

Commit hooks (`after_commit`) run once the outermost transaction has committed and the
lock is released; the rollback of the block they were queued in (a savepoint, or the
whole transaction) runs their `on_rollback` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Container, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from ledger.errors import LedgerError, TransactionAborted
from ledger.tx import Conn, Params, Tx

T = TypeVar("T")


class _EveryKey:
    """Holds every key: where writers are serialised, the write lock covers them all."""

    def __contains__(self, key: object) -> bool:
        return True


EVERY_KEY = _EveryKey()
Hook = Callable[[], None]
WaitHook = Callable[[str], None]


class Session:
    """One connection and its transaction state; used by one thread at a time."""

    driver_error: ClassVar[type[Exception]] = Exception  # what `guarded` translates
    read_begin: ClassVar[str] = "BEGIN"  # how `reading()` opens its snapshot

    def __init__(self, conn: Conn, tx: Tx, path: str, *, readonly: bool = False) -> None:
        self.conn = conn
        self.tx = tx  # what projections write through
        self.path = path
        self.readonly = readonly
        self.check_tip: Callable[[Session], None] | None = None  # run when the tip is reloaded
        self.on_wait: WaitHook | None = None  # told once when a write waits long for the lock
        self.depth = 0
        self.owner = 0  # the thread whose transaction is open (while depth > 0)
        self.tip: tuple[int, str] | None = None
        self.versions: dict[str, int] = {}
        self.held: Container[str] = EVERY_KEY  # what this transaction has locked (`hold`)
        self.partial = False  # set by a write once it has begun changing the database
        self.recorded_at: str | None = None  # the time every event of this transaction gets
        self._doomed: int | None = None  # the depth at which a part-written append failed
        self._hooks: list[tuple[int, Hook, Hook | None]] = []  # (depth queued at, commit, undo)

    # -- what a backend provides -------------------------------------------------------

    def begin(self, timeout: float | None = None) -> None:
        """Open the outermost write transaction (waiting at most `timeout` for the lock)."""
        raise NotImplementedError

    def hold(self, keys: tuple[str, ...]) -> None:
        """Hold `keys` until the transaction ends (nothing to do where writers are serialised)."""

    def locked_rows(self, key: str, sql: str, params: Params) -> list[Any]:
        """Hold `key` (see `hold`), then the rows of `sql`: read under the lock."""
        self.hold((key,))
        return self.conn.execute(sql, params).fetchall()

    def translate(self, exc: Exception) -> LedgerError | None:
        """The typed ledger error for a driver failure, or None if it is a programming error."""
        raise NotImplementedError

    def _unlock(self) -> None:
        """Release what `begin` took beyond the transaction itself (nothing by default)."""

    def _write_late(self) -> None:
        """Write what waits for the commit now (`Tx.at_commit`; nothing waits by default),
        raising typed ledger errors: before COMMIT, and before a SAVEPOINT."""

    def _drop_late(self) -> None:
        """Forget what waits for the commit: the savepoint it was queued in rolled back."""

    def _quietly(self, sql: str) -> None:
        """Run `sql`, whose result nothing reads (a backend may send it with the next one)."""
        self.conn.execute(sql)

    def _open(self) -> bool:
        """True while the database holds a transaction here (even a failed one)."""
        return self.conn.in_transaction

    def _rollback(self) -> None:
        if self._open():
            self.conn.execute("ROLLBACK")

    # -- the transaction state machine -------------------------------------------------

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
    def reading(self) -> Iterator[Conn]:
        """One consistent snapshot for several reads (no write lock)."""
        if self.depth or self._open():
            yield self.conn
            return
        self._quietly(self.read_begin)
        try:
            yield self.conn
        finally:
            self._rollback()

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
        """Call `fn`, translating the driver's storage and guard failures into ledger errors."""
        try:
            return fn(*args)
        except self.driver_error as exc:
            typed = self.translate(exc)
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
                self._rollback()
            elif not conn.in_transaction:
                self.forget()
                self._rollback()  # a failed transaction the database still holds
                raise TransactionAborted("an error inside it")
            else:
                try:
                    self._write_late()
                    self.guarded(conn.execute, "COMMIT")
                except BaseException:
                    self.forget()
                    self._rollback()
                    raise
                committed = True
        finally:
            self._unlock()
            _run(hooks, committed=committed)

    def close(self) -> None:
        """Roll back anything open and close the connection."""
        self._rollback()
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
        # What waits for the commit is written before the savepoint, so whatever waits
        # once it ends was queued inside it: its rollback drops all of that, and only that.
        self._write_late()
        self._quietly(f"SAVEPOINT {name}")
        self.depth += 1
        try:
            yield owner
        except BaseException:
            self.depth -= 1
            self.forget()
            self._drop_late()
            if self._open():
                conn.execute(f"ROLLBACK TO {name}")
                self._quietly(f"RELEASE {name}")
                if self._doomed is not None and self._doomed > self.depth:
                    self._doomed = None  # the part-written append is undone
                self._undo_hooks(self.depth)
            raise
        self.depth -= 1
        self._check_doomed()
        self._quietly(f"RELEASE {name}")
        depth = self.depth  # the released block's hooks now wait for the enclosing one
        self._hooks = [(min(d, depth), fn, undo) for d, fn, undo in self._hooks]


def _run(hooks: list[tuple[int, Hook, Hook | None]], *, committed: bool) -> None:
    for _, on_commit, on_rollback in hooks:
        hook = on_commit if committed else on_rollback
        if hook is not None:
            hook()
