"""`SqliteLedger`: the ledger on one SQLite file (the embedded default), behind `Ledger`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ledger import opening, schema
from ledger.errors import NotALedger
from ledger.projection import Projection
from ledger.sqlite import LedgerDatabase, WriteLock, connect, sqlite3
from ledger.sqlite_session import SqliteSession
from ledger.store import Ledger, Synchronous
from ledger.tx import Conn, Dialect, SqliteTx, Tx

WAL_AUTOCHECKPOINT = 4000
"""Pages (4 KiB) the WAL may hold before a commit checkpoints it (SQLite's default: 1000).

A settle touches a dozen pages (events and their indexes, projections); checkpointing
less often writes each hot page back once instead of several times, and syncs the file
less often. The checkpoint still runs inside a commit, under the write lock."""


class SqliteLedger(Ledger):
    """The ledger on one SQLite file: WAL mode, writers queued on one lock file.

    Every write transaction takes the ledger's `WriteLock` (threads, then an `flock` shared
    by all processes) before `BEGIN IMMEDIATE`. Reads see the last commit (WAL snapshots)
    and never wait for a writer.

    Durability: `synchronous="FULL"` (the default) syncs the WAL on every commit, so a
    committed append survives power loss. `"NORMAL"` syncs only at checkpoints: several
    times faster per commit, never corrupts the file, but a power loss (not a process
    crash) can lose the last transactions acknowledged before it.
    """

    dialect: ClassVar[Dialect] = "sqlite"
    _unprobed_new_streams = True  # a failed INSERT leaves SQLite's transaction usable

    def __init__(
        self,
        first: sqlite3.Connection,
        connector: Any,
        lock: WriteLock,
        path: str,
        projections: Sequence[Projection],
        *,
        busy_timeout: float = 60.0,
        readonly: bool = False,
    ) -> None:
        self._lock = lock
        self._busy_timeout = busy_timeout
        super().__init__(first, connector, path, projections, readonly=readonly)

    @classmethod
    def open_file(
        cls,
        path: Path,
        *,
        synchronous: Synchronous,
        projections: Sequence[Projection],
        busy_timeout: float,
        readonly: bool,
    ) -> SqliteLedger:
        """Open the file at `path`, creating it if missing; a foreign file is refused.

        Opening takes the write lock only to create or upgrade the schema, so it never
        waits for another process's transaction on an up-to-date ledger.
        """
        path = path.absolute()
        opening.check_path(path, readonly)
        setup = [
            f"PRAGMA synchronous = {synchronous}",
            f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}",
        ]

        def configure(conn: sqlite3.Connection) -> sqlite3.Connection:
            for pragma in setup:
                conn.execute(pragma)
            return conn

        conn = connect(path, readonly=readonly)
        lock: WriteLock | None = None
        try:
            version = schema.identify(conn, str(path))
            configure(conn)
            if readonly:
                opening.check_readable(conn, str(path), version, projections)
                lock = WriteLock(None)
            else:
                real = path.resolve()  # one lock file, whichever name the file is opened by
                lock = WriteLock(real.with_name(real.name + ".lock"))
                if opening.needs_setup(conn, version, projections):
                    lock.acquire(busy_timeout)
                    try:
                        opening.setup(conn, str(path), projections)
                    finally:
                        lock.release()
            return cls(
                conn,
                lambda: configure(connect(path, readonly=readonly)),
                lock,
                str(path),
                projections,
                busy_timeout=busy_timeout,
                readonly=readonly,
            )
        except BaseException as exc:
            conn.close()
            if lock is not None:
                lock.close()
            if isinstance(exc, sqlite3.Error):
                raise NotALedger(str(path), f"SQLite failed: {exc}") from exc
            raise

    @classmethod
    def in_memory(cls, projections: Sequence[Projection]) -> SqliteLedger:
        """A ledger in process memory (for tests): same schema, no file, one connection."""
        conn = connect(None)
        opening.setup(conn, ":memory:", projections)
        return cls(conn, None, WriteLock(None), ":memory:", projections, busy_timeout=60.0)

    def _make_session(self, conn: sqlite3.Connection) -> SqliteSession:
        return SqliteSession(
            conn, self._lock, self.path, busy_timeout=self._busy_timeout, readonly=self.readonly
        )

    def _closing(self) -> contextlib.AbstractContextManager[bool]:
        """The last connection to the file anywhere checkpoints as it closes, so it closes
        under the write lock when that is free. If another process holds the lock, it has
        the file open, SQLite does not checkpoint on this close, and a reader need not wait.
        """
        return self._lock.closing(self._busy_timeout)

    @property
    def _session(self) -> SqliteSession:
        return self._s  # type: ignore[return-value]

    @property
    def db(self) -> LedgerDatabase:
        """This thread's sqlite-utils `Database` on the file (typed errors on execute)."""
        return self._s.db  # type: ignore[attr-defined, no-any-return]  # (hot: one lookup)

    @property
    def sqlite_version(self) -> str:
        """The version of the SQLite library in use (3.51.3+ fixes the WAL-reset bug)."""
        return str(self._session.conn.execute("SELECT sqlite_version()").fetchone()[0])

    def _engine_version(self) -> str:
        return self.sqlite_version

    @contextlib.contextmanager
    def _scratch(self, conn: Conn) -> Iterator[Tx]:
        """An in-memory database: rebuilding there never takes (or waits for) the lock."""
        scratch = sqlite3.connect(":memory:")
        try:
            yield SqliteTx(scratch)
        finally:
            scratch.close()

    def _missing_guards(self, conn: Conn) -> list[str]:
        present = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        }
        return [guard for guard in schema.GUARDS if guard not in present]

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Run a WAL checkpoint under the write lock; SQLite's (busy, log, checkpointed)."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        session = self._session
        if session.joinable():
            raise ValueError("checkpoint() inside a transaction: call it after the commit")
        self._lock.acquire(self._busy_timeout, session.on_wait)
        try:
            row = session.conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        finally:
            self._lock.release()
        return (row[0], row[1], row[2])
