"""`Ledger`: the append-only event store on one SQLite file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

from ledger import flows as flow_index
from ledger import schema, verify
from ledger.append import Batch, find_repeat, prepare, row_key
from ledger.codec import GENESIS, chain_hash, decoder_for, now_text
from ledger.errors import (
    ConcurrencyError,
    CorruptRecord,
    NotALedger,
    OpenError,
    ReadOnlyLedger,
)
from ledger.projection import EVENT_COLUMNS, Projection, records, replay
from ledger.records import Appended, FlowRow, Record, VerifyReport
from ledger.sqlite import LedgerDatabase, WriteLock, connect, sqlite3, writable
from ledger.transactions import Transactional

Synchronous = Literal["FULL", "NORMAL"]
WAL_AUTOCHECKPOINT = 4000
"""Pages (4 KiB) the WAL may hold before a commit checkpoints it (SQLite's default: 1000).

A settle touches a dozen pages (events and their indexes, projections); checkpointing
less often writes each hot page back once instead of several times, and syncs the file
less often. The checkpoint still runs inside a commit, under the write lock."""

_TIP = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
_VERSION = "SELECT max(version) FROM events WHERE stream = ?"
_INSERT = (
    "INSERT INTO events (position, stream, version, type, data, recorded_at, "
    "idempotency_key, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_READ = (
    "SELECT position, version, data FROM events WHERE stream = ? AND version > ? ORDER BY version"
)


class Ledger(Transactional):
    """Append-only streams of msgspec events in SQLite, with projections kept in step.

    Satisfies flowlib's `Store` protocol. Durability: the file is in WAL mode, and
    `synchronous="FULL"` (the default) syncs the WAL on every commit, so a committed append
    survives power loss. `"NORMAL"` syncs only at checkpoints: several times faster per
    commit, never corrupts the file, but a power loss (not a process crash) can lose the
    last transactions acknowledged before it.
    """

    def __init__(
        self, db: LedgerDatabase, lock: WriteLock, projections: Sequence[Projection]
    ) -> None:
        super().__init__(db.conn, lock, db.ledger_path)
        self.db = db
        self.projections: tuple[Projection, ...] = (flow_index.FlowsProjection(), *projections)
        names = [projection.name for projection in self.projections]
        if len(set(names)) != len(names):
            raise ValueError(f"projection names must be unique: {names}")
        self._applies = [projection.apply for projection in self.projections]
        self._closed = False

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        projections: Sequence[Projection] = (),
        busy_timeout: float = 60.0,
    ) -> Ledger:
        """Open the ledger at `path`, creating it if missing; a foreign file is refused."""
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        path = Path(path).absolute()
        schema.check_header(path)
        if not path.parent.is_dir():
            raise OpenError(str(path), f"directory {path.parent} does not exist")
        for target in (path, path.parent) if path.exists() else (path.parent,):
            if not writable(target):
                raise ReadOnlyLedger(str(path), f"{target} is not writable")
        conn = connect(path, busy_timeout)
        lock: WriteLock | None = None
        try:
            schema.identify(conn, str(path))
            lock = WriteLock(path.with_name(path.name + ".lock"))
            with lock:
                schema.identify(conn, str(path))
                conn.execute("PRAGMA journal_mode = WAL")
                db = _database(conn, str(path))
                schema.migrate(db)
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
            ledger = cls(db, lock, projections)
            ledger._prepare_projections()
        except BaseException as exc:
            conn.close()
            if lock is not None:
                lock.close()
            if isinstance(exc, sqlite3.Error):
                raise NotALedger(str(path), f"SQLite failed: {exc}") from exc
            raise
        return ledger

    @classmethod
    def memory(cls, *, projections: Sequence[Projection] = ()) -> Ledger:
        """A ledger in process memory (for tests): same schema, no file, no lock."""
        db = _database(connect(None, 0.0), ":memory:")
        schema.migrate(db)
        ledger = cls(db, WriteLock(None), projections)
        ledger._prepare_projections()
        return ledger

    def close(self) -> None:
        """Close the connection (its final checkpoint runs under the write lock)."""
        if self._closed:
            return
        self._closed = True
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        with self._lock:
            self._conn.close()
        self._lock.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def sqlite_version(self) -> str:
        """The version of the SQLite library in use (3.51.3+ fixes the WAL-reset bug)."""
        return str(self._conn.execute("SELECT sqlite_version()").fetchone()[0])

    def append(
        self,
        stream: str,
        events: Sequence[msgspec.Struct],
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> int:
        """Append `events` to `stream` atomically; returns the stream's new version.

        With `expected_version`, the stream must be at exactly that version, else
        `ConcurrencyError` and nothing is appended. A repeated `idempotency_key` appends
        nothing and returns the version the original append reached (see `append_batch`).
        """
        return self.append_batch(
            stream, events, expected_version=expected_version, idempotency_key=idempotency_key
        ).version

    def append_batch(
        self,
        stream: str,
        events: Sequence[msgspec.Struct],
        *,
        expected_version: int | None = None,
        idempotency_key: str | None = None,
    ) -> Appended:
        """Like `append`, returning the positions written (or originally written)."""
        batch = prepare(stream, events, expected_version, idempotency_key)
        if self._depth:
            return self._join(self._write, stream, batch, expected_version, idempotency_key)
        self._begin()
        try:
            appended = self._guarded(self._write, stream, batch, expected_version, idempotency_key)
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)
        return appended

    def read(self, stream: str, type: Any, *, from_version: int = 0) -> list[Any]:
        """The stream's events after `from_version`, decoded as `type` (a Struct or Union)."""
        decode = decoder_for(type).decode
        out = []
        for position, version, data in self._conn.execute(_READ, (stream, from_version)):
            try:
                out.append(decode(data))
            except msgspec.DecodeError as exc:
                raise CorruptRecord(position, stream, version, str(exc)) from exc
        return out

    def version(self, stream: str) -> int:
        """The number of events in `stream` (0 if it has none)."""
        return int(self._conn.execute(_VERSION, (stream,)).fetchone()[0] or 0)

    def records(self, stream: str) -> list[Record]:
        """The stream's stored records (position, time, type, JSON body), oldest first."""
        rows = self._conn.execute(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE stream = ? ORDER BY version", (stream,)
        ).fetchall()
        return [Record(p, st, v, t, d.encode(), at, k, h) for p, st, v, t, d, at, k, h in rows]

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[Record]:
        """Every event after global position `after`, oldest first, read in pages."""
        remaining = -1 if limit is None else limit
        while remaining:
            page = list(records(self._conn, after, 1000 if remaining < 0 else min(remaining, 1000)))
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].position
            remaining = remaining - len(page) if remaining > 0 else -1

    def head(self) -> tuple[int, str]:
        """The last position and its hash ((0, GENESIS) when empty)."""
        row = self._conn.execute(_TIP).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def count(self) -> int:
        """The number of stored events."""
        return int(self._conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def flows(
        self,
        *,
        status: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[FlowRow]:
        """The flow index: rows with `status` and/or due at or before `due_before` (by due)."""
        return flow_index.query(self._conn, status, due_before, limit)

    def verify(self) -> VerifyReport:
        """Walk the hash chain and compare every projection with a rebuild (rolled back)."""
        with self.transaction():
            return verify.run(self._conn, self.projections, self.sqlite_version)

    def rebuild(self) -> int:
        """Regenerate every projection table from the events; returns the events applied."""
        with self.transaction():
            return self._guarded(replay, self._conn, self.projections)

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Run a WAL checkpoint under the write lock; SQLite's (busy, log, checkpointed)."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(f"unknown checkpoint mode {mode!r}")
        with self._lock:
            row = self._conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return (row[0], row[1], row[2])

    def _write(self, stream: str, batch: Batch, expected: int | None, key: str | None) -> Appended:
        conn = self._conn
        if key is not None and (earlier := find_repeat(conn, stream, batch, expected, key)):
            return earlier
        version = self._versions.get(stream)
        if version is None:
            version = conn.execute(_VERSION, (stream,)).fetchone()[0] or 0
        if expected is not None and expected != version:
            raise ConcurrencyError(stream, expected, version)
        if not batch:
            return Appended(stream, 0, 0, version)
        position, previous = self._tip or (conn.execute(_TIP).fetchone() or (0, GENESIS))
        if self._recorded_at is None:  # one time for the whole transaction: when it commits
            self._recorded_at = now_text()
        first, recorded_at, rows = position + 1, self._recorded_at, []
        for index, (type_, data) in enumerate(batch):
            position += 1
            version += 1
            stored_key = row_key(key, index)
            previous = chain_hash(
                previous, position, stream, version, type_, data, recorded_at, stored_key
            )
            rows.append(
                (position, stream, version, type_, data.decode(), recorded_at, stored_key, previous)
            )
        self._partial = True  # from here a failure leaves part of the batch written
        if len(rows) == 1:
            conn.execute(_INSERT, rows[0])
        else:
            conn.executemany(_INSERT, rows)
        self._tip, self._versions[stream] = (position, previous), version
        for row, (_, data) in zip(rows, batch, strict=True):
            record = Record(row[0], stream, row[2], row[3], data, recorded_at, row[6], row[7])
            for apply in self._applies:
                apply(conn, record)
        return Appended(stream, first, len(rows), version)

    def _prepare_projections(self) -> None:
        with self.transaction():
            has_events = self._conn.execute("SELECT 1 FROM events LIMIT 1").fetchone()
            for projection in self.projections:
                fresh = not any(self.db[table].exists() for table in projection.tables)
                projection.create(self.db)
                if fresh and has_events:
                    replay(self._conn, [projection])


def _database(conn: sqlite3.Connection, path: str) -> LedgerDatabase:
    db = LedgerDatabase(conn)
    db.ledger_path = path
    return db
