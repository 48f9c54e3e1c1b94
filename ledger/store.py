"""`Ledger`: the append-only event store, backend-neutral, safe from many threads.

The facade holds everything the backends share: batch preparation, the hash chain, reads
with their link checks, the write path, verify and rebuild. A backend (`SqliteLedger` in
`ledger.sqlite_ledger`, `PostgresLedger` in `ledger.postgres_ledger`) supplies connections,
the session that opens write transactions, and the few checks that differ.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, TypeGuard

import msgspec

from ledger import flows as flow_index
from ledger import verify
from ledger.append import Batch, find_repeat, prepare, row_key
from ledger.codec import GENESIS, chain_hash, decoder_for, now_text
from ledger.errors import (
    ChainBroken,
    ConcurrencyError,
    CorruptRecord,
    InvalidAppend,
    LockTimeout,
    OpenError,
)
from ledger.projection import EVENT_COLUMNS, Projection, clear, records
from ledger.records import Anchor, Appended, FlowRow, Record, VerifyReport
from ledger.sqlite import sqlite3
from ledger.timer_claims import TimerClaims
from ledger.transactions import Session, WaitHook
from ledger.tx import Conn, Dialect, Params, Tx

if TYPE_CHECKING:
    from ledger.copy import CopyProgress, CopyReport
    from ledger.sqlite import LedgerDatabase

Synchronous = Literal["FULL", "NORMAL"]
FOLLOW_POLL = 0.1  # seconds between looks at the head while waiting for events (SQLite)
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_dsn(target: str | Path) -> TypeGuard[str]:
    """True for a PostgreSQL DSN (what `Ledger.open` takes for PostgreSQL), False for a path."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


_TIP = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
_VERSION = "SELECT max(version) FROM events WHERE stream = ?"
_INSERT = (
    "INSERT INTO events (position, stream, version, type, data, recorded_at, "
    "idempotency_key, hash) VALUES "
)
_ROW = "(?, ?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_INSERT = 100  # one statement for a batch's rows (8 parameters each)
_CLASH = "UNIQUE constraint failed: events.stream, events.version"
# Each event read with its predecessor's stored hash, so its link is checked as it is read.
_READ = (
    f"SELECT {EVENT_COLUMNS}, (SELECT p.hash FROM events p WHERE p.position = e.position - 1) "
    "FROM events e WHERE stream = ? AND version > ? ORDER BY version"
)


class Ledger(TimerClaims):
    """Append-only streams of msgspec events, with projections kept in step.

    Satisfies flowlib's `Store` protocol. One `Ledger` per process serves every thread:
    each thread gets its own connection on first use (closed once the thread has ended).
    A check made inside `transaction()` still holds when the transaction acts on it: on
    SQLite every write transaction is serialised; on PostgreSQL (many hosts) a
    transaction locks each stream it reads or appends to, and any other key it checks
    (`lock`), so only transactions on the same keys wait for each other. Reads outside a
    transaction see the last commit and never wait for a writer.

    `Ledger.open(target)` picks the backend: a file path is SQLite (the embedded default,
    see `SqliteLedger` for durability and locking), a `postgresql://` DSN is PostgreSQL.

    Integrity: every event read back through `read` or `records` is checked against its
    hash chain (`ChainBroken`, nothing written), and so is the last event before a write
    (a ledger whose tip was changed refuses every write). `scrub()` checks the rest.
    """

    dialect: ClassVar[Dialect]
    """Which SQL the ledger speaks, for the few places where it differs."""
    _unprobed_new_streams: ClassVar[bool] = False  # see `_write`
    serialised: ClassVar[bool] = True
    """True if every write transaction runs alone (SQLite), so `lock` is never needed."""
    _read_sql: ClassVar[str] = _READ  # a stream's events, each with its predecessor's hash
    _chain: ClassVar[verify.Chain] = verify.GLOBAL

    def __init__(
        self,
        first: Conn,
        connector: Callable[[], Conn] | None,
        path: str,
        projections: Sequence[Projection],
        *,
        readonly: bool = False,
    ) -> None:
        self.path = path
        self.readonly = readonly
        self.projections: tuple[Projection, ...] = (flow_index.FlowsProjection(), *projections)
        names = [projection.name for projection in self.projections]
        if len(set(names)) != len(names):
            raise ValueError(f"projection names must be unique: {names}")
        self._applies = [_batched(projection) for projection in self.projections]
        self._connector = connector  # None: one connection for every thread (in memory)
        self._on_wait: WaitHook | None = None
        self._local = threading.local()
        self._sessions: list[tuple[threading.Thread, Session]] = []
        self._registry = threading.Lock()
        self._closed = False
        self._forked = 0  # in a forked child: the pid of the process that opened it
        _OPEN.add(self)
        self._adopt(first)

    @classmethod
    def open(
        cls,
        target: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        projections: Sequence[Projection] = (),
        busy_timeout: float = 60.0,
        readonly: bool = False,
    ) -> Ledger:
        """Open the ledger at `target` (a file path, or a `postgresql://` DSN), creating it.

        `synchronous="FULL"` (the default) makes every commit durable before it returns;
        `"NORMAL"` may lose the last acknowledged commits on power loss (SQLite) or a server
        crash (PostgreSQL), never corrupting anything. With `readonly`, nothing is created
        or written (`MissingLedger` if there is no ledger, `ReadOnlyLedger` on writes).
        `busy_timeout` bounds a write's wait for the write lock (`LockTimeout`).
        """
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        options: dict[str, Any] = {
            "synchronous": synchronous,
            "projections": projections,
            "busy_timeout": busy_timeout,
            "readonly": readonly,
        }
        if is_dsn(target):
            try:  # psycopg is an optional extra
                from ledger.postgres_ledger import PostgresLedger
            except ImportError as exc:
                if not (exc.name or "").startswith("psycopg"):
                    raise
                reason = "PostgreSQL needs psycopg: pip install 'orderflow[postgres]'"
                raise OpenError(target.partition("@")[2] or target, reason) from exc
            return PostgresLedger.connect(target, **options)
        from ledger.sqlite_ledger import SqliteLedger

        return SqliteLedger.open_file(Path(target), **options)

    @classmethod
    def memory(cls, *, projections: Sequence[Projection] = ()) -> Ledger:
        """A ledger in process memory (for tests): SQLite's schema, no file, one connection."""
        from ledger.sqlite_ledger import SqliteLedger

        return SqliteLedger.in_memory(projections)

    def close(self) -> None:
        """Close every thread's connection, once this process's writers are done."""
        if self._forked:  # the parent's connections (and lock file): never touched from here
            with self._registry:
                self._closed = True
            return
        with self._closing():
            with self._registry:
                if self._closed:
                    return
                self._closed = True
                sessions, self._sessions = self._sessions, []
            for _, session in sessions:
                session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what a backend provides -------------------------------------------------------

    def _make_session(self, conn: Any) -> Session:
        """A session (with its backend's write transactions) on a new connection."""
        raise NotImplementedError

    def _closing(self) -> contextlib.AbstractContextManager[object]:
        """Held while `close` closes the sessions (SQLite: its write lock, when free)."""
        return contextlib.nullcontext()

    def _engine_version(self) -> str:
        """The database engine's version, for verify reports."""
        raise NotImplementedError

    def _scratch(self, conn: Conn) -> contextlib.AbstractContextManager[Tx]:
        """Empty projection tables for `verify`'s rebuild, invisible to every other reader."""
        raise NotImplementedError

    def _missing_guards(self, conn: Conn) -> list[str]:
        """The append-only guards (triggers) that are absent or disabled."""
        raise NotImplementedError

    def _keep_writers_out(self, conn: Conn) -> None:
        """Make this write transaction the only writer until it ends (rebuild, copy).

        SQLite's write transactions already are; PostgreSQL's are not (see `lock`).
        """

    def _check_read(self, previous: str | None, row: verify.Row) -> None:
        """Raise `ChainBroken` unless a row read links to `previous` (its predecessor's hash)."""
        verify.check_link(previous, row)

    def _insert_rows(self, conn: Conn, rows: list[tuple[Any, ...]]) -> None:
        """Insert complete event rows as given (`_restore`): multi-row INSERTs by default."""
        _insert(conn, rows)

    @property
    def db(self) -> LedgerDatabase:
        """This thread's sqlite-utils `Database` (SQLite only: use `query` to stay portable)."""
        raise TypeError(f"ledger.db is SQLite's; this ledger is on {self.dialect}: use query()")

    @property
    def sqlite_version(self) -> str:
        """The version of the SQLite library in use (SQLite only)."""
        raise TypeError(f"this ledger is on {self.dialect}, not SQLite")

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Run a WAL checkpoint (SQLite only): SQLite's (busy, log, checkpointed)."""
        raise TypeError(f"checkpoint() is SQLite's; this ledger is on {self.dialect}")

    # -- sessions: one connection per thread -------------------------------------------

    @property
    def _s(self) -> Session:
        try:
            session: Session = self._local.session
        except AttributeError:
            return self._new_session()
        if self._closed:
            raise OpenError(self.path, "the ledger was closed")
        return session

    def _new_session(self) -> Session:
        if self._forked:
            raise OpenError(
                self.path,
                f"it was opened in process {self._forked} before this process forked from it: "
                "open the ledger in each worker process, after the fork",
            )
        if self._connector is None:  # in memory: the one connection, for every thread
            with self._registry:
                if self._closed:
                    raise OpenError(self.path, "the ledger was closed")
                self._local.session = self._sessions[0][1]
            return self._local.session  # type: ignore[no-any-return]
        return self._adopt(self._connector())

    def _adopt(self, conn: Conn) -> Session:
        """Make `conn` this thread's session, and close the sessions of ended threads."""
        session = self._make_session(conn)
        session.check_tip = _check_tip
        with self._registry:
            if self._closed:
                conn.close()
                raise OpenError(self.path, "the ledger was closed")
            session.on_wait = self._on_wait
            ended = [s for thread, s in self._sessions if not thread.is_alive()]
            self._sessions = [(t, s) for t, s in self._sessions if t.is_alive()]
            self._sessions.append((threading.current_thread(), session))
        for old in ended:  # never the last connection (this one is open): no checkpoint
            old.close()
        self._local.session = session
        return session

    def query(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-model query in portable SQL (`?` placeholders, see `ledger.tx`).

        Runs on this thread's connection: inside `transaction()` or `reading()`, that
        snapshot; otherwise the last commit. Storage failures raise typed ledger errors.
        """
        session = self._s
        return session.guarded(session.conn.execute, sql, params).fetchall()

    @property
    def in_transaction(self) -> bool:
        """True while this thread is inside a transaction (a write, or a `reading()` block)."""
        return self._s.conn.in_transaction

    @property
    def on_wait(self) -> WaitHook | None:
        """Called with the holder's description when a write has waited ~1 s for the lock."""
        return self._on_wait

    @on_wait.setter
    def on_wait(self, hook: WaitHook | None) -> None:
        self._on_wait = hook
        with self._registry:
            for _, session in self._sessions:
                session.on_wait = hook

    # -- transactions and appends ------------------------------------------------------

    def transaction(self) -> contextlib.AbstractContextManager[Self]:
        """A write transaction; re-entrant (yields `self`, the ledger).

        The outermost block takes the write lock, runs `BEGIN IMMEDIATE`, and commits at
        its end. Inner blocks join it through a savepoint: an exception that leaves an
        inner block undoes that block's work; one that leaves the outermost rolls
        everything back. The transaction belongs to the thread that opened it.
        """
        return self._s.transaction(self)

    @contextmanager
    def reading(self) -> Iterator[Self]:
        """Several reads from one snapshot (no lock; inside a transaction, that one)."""
        with self._s.reading():
            yield self

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
        session = self._s
        args = (session, stream, batch, expected_version, idempotency_key)
        if session.joinable():
            return session.join(self._write, *args)
        session.begin()
        try:
            appended = session.guarded(self._write, *args)
        except BaseException as exc:
            session.finish(exc)
            raise
        session.finish(None)
        return appended

    # -- reads -------------------------------------------------------------------------

    def read(self, stream: str, type: Any, *, from_version: int = 0) -> list[Any]:
        """The stream's events after `from_version`, decoded as `type` (a Struct or Union).

        Each event's hash link is checked first: `ChainBroken` if it was changed.
        """
        decode = decoder_for(type).decode
        out = []
        for *row, previous in self._stream_rows(stream, from_version):
            self._check_read(previous, row)
            try:
                out.append(decode(row[4]))
            except msgspec.DecodeError as exc:
                raise CorruptRecord(row[0], stream, row[2], str(exc)) from exc
        return out

    def version(self, stream: str) -> int:
        """The number of events in `stream` (0 if it has none).

        Inside this thread's write transaction the answer is remembered (no other writer
        can move the stream until it ends), so a later append to it needs no probe.
        """
        session = self._s
        if not session.joinable():
            return int(session.conn.execute(_VERSION, (stream,)).fetchone()[0] or 0)
        version = session.versions.get(stream)
        if version is None or stream not in session.held:
            rows = session.guarded(session.locked_rows, stream, _VERSION, (stream,))
            version = session.versions[stream] = int(rows[0][0] or 0)
        return version

    def _stream_rows(self, stream: str, after: int) -> Any:
        """The stream's rows after version `after`, each with its predecessor's stored hash.

        Inside this thread's write transaction the stream is locked first (see `lock`), so
        what the transaction reads of it stays true until it commits.
        """
        session = self._s
        if session.joinable():
            return session.guarded(session.locked_rows, stream, self._read_sql, (stream, after))
        return session.conn.execute(self._read_sql, (stream, after))

    def after_commit(
        self, fn: Callable[[], None], on_rollback: Callable[[], None] | None = None
    ) -> None:
        """Run `fn` once this thread's transaction has committed (at once if none is open).

        If the block it was queued in is rolled back (a savepoint, or the whole
        transaction), `on_rollback` runs instead. Neither may raise.
        """
        self._s.after_commit(fn, on_rollback)

    def lock(self, *keys: str) -> None:
        """Hold `keys` until this thread's write transaction ends; call before the reads they guard.

        A check-then-act on a flow, a webhook or a SKU locks its key first, so two
        transactions on one key run one after the other while transactions on different
        keys run at once (PostgreSQL: advisory locks, taken in a sorted order in one round
        trip). Every append also locks its own stream. On SQLite, whose writers are
        serialised by one lock, it costs nothing.
        """
        session = self._s
        if not session.joinable():
            raise ValueError("lock() needs this thread's write transaction")
        session.guarded(session.hold, keys)

    def records(self, stream: str) -> list[Record]:
        """The stream's stored records (position, time, type, JSON body), oldest first.

        Each is checked against its hash link first (`ChainBroken`).
        """
        out = []
        for *row, previous in self._stream_rows(stream, 0):
            self._check_read(previous, row)
            p, st, v, t, d, at, k, h = row
            out.append(Record(p, st, v, t, d.encode(), at, k, h))
        return out

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[Record]:
        """Every event after global position `after`, oldest first, read in pages.

        For inspection: not checked against the chain (`verify` and `scrub` do that).
        """
        remaining = -1 if limit is None else limit
        while remaining:  # the connection of whichever thread reads this page
            size = 1000 if remaining < 0 else min(remaining, 1000)
            page = list(records(self._s.conn, after, size))
            yield from page
            if len(page) < 1000:
                return
            after = page[-1].cursor
            remaining = remaining - len(page) if remaining > 0 else -1

    def head(self) -> tuple[int, str]:
        """The last position and its hash ((0, GENESIS) when empty)."""
        row = self._s.conn.execute(_TIP).fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """Wait until the ledger holds events after global position `after`, at most `timeout`
        seconds; True if it does. For followers (`ledger tail --follow`, the worker).

        SQLite looks at the head every `FOLLOW_POLL` seconds; PostgreSQL wakes on the
        sequencer's notification (`ledger.listener`).
        """
        deadline = time.monotonic() + timeout
        while self.head()[0] <= after:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, FOLLOW_POLL))
        return True

    def count(self) -> int:
        """The number of stored events."""
        return int(self._s.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def flows(
        self,
        *,
        status: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
        started_after: int | None = None,
        newest: bool = False,
    ) -> list[FlowRow]:
        """The flow index: rows with `status` and/or due at or before `due_before` (by due).

        `started_after` (a position) and `newest` (`limit` keeps the last rows) are for listings.
        """
        return flow_index.query(
            self._s.conn, status, due_before, limit, started_after=started_after, newest=newest
        )

    # -- integrity and maintenance -----------------------------------------------------

    def verify(self, *, expect_head: Anchor | None = None) -> VerifyReport:
        """Walk the whole hash chain and compare every projection with a rebuild.

        Reads one snapshot and rebuilds into a scratch database: writers are never
        blocked. An ok result is recorded (when writable) as the last full verification
        and where the next `scrub` starts. `expect_head` (a position and hash noted
        outside the file) must be in the chain, which catches lost trailing events.
        """
        with self._s.reading() as conn:
            report = verify.full(
                conn,
                self.projections,
                self._scratch(conn),
                self._missing_guards(conn),
                self._engine_version(),
                expect_head,
                self._chain,
            )
        self._remember(report)
        return report

    def scrub(self, *, expect_head: Anchor | None = None) -> VerifyReport:
        """Verify the chain from the last verified position to the head, and record it.

        The cost is that of the events added since the last scrub or verify, not of the
        ledger: a service runs it in the background. A never-verified ledger is walked
        from the start (without the projection comparison of `verify`).
        """
        with self._s.reading() as conn:
            report = verify.since_last(conn, self._engine_version(), expect_head, self._chain)
        self._remember(report)
        return report

    def _remember(self, report: VerifyReport) -> None:
        """Record an ok report if the write lock is free now: checking never waits."""
        if not report.ok or self.readonly or not report.events:
            return
        session = self._s
        if session.joinable():
            session.guarded(verify.record, session.conn, report)
            return
        if session.conn.in_transaction:  # inside reading(): the next check records it
            return
        try:
            session.begin(timeout=0.0)
        except LockTimeout:
            return  # a writer is busy; the next check records it
        try:
            session.guarded(verify.record, session.conn, report)
        except BaseException as exc:
            session.finish(exc)
            raise
        session.finish(None)

    def rebuild(self) -> int:
        """Regenerate every projection table from the events; returns the events applied.

        Refused (`ChainBroken`, nothing changed) if any event fails its hash link: a
        rebuild must never turn a changed event into the shop's current state.
        """
        with self.transaction():
            conn = self._s.conn
            self._keep_writers_out(conn)
            clear(conn, self.projections)  # then one pass: check each link and apply it
            count, _, broken, _ = self._s.guarded(
                self._chain.walk, conn, 0, GENESIS, (self._s.tx, self.projections)
            )
            if broken is not None:  # raising rolls the cleared tables back
                raise ChainBroken(broken.position, "its content does not give its stored hash")
            return count

    def copy_to(
        self,
        target: str | Path,
        *,
        projections: Sequence[Projection] | None = None,
        batch_size: int = 1000,
        progress: Callable[[CopyProgress], None] | None = None,
    ) -> CopyReport:
        """Copy every event, verbatim, into the empty ledger at `target` (a path or a DSN).

        The source's chain is checked first and read from one snapshot; the destination
        is written in one transaction, its projections rebuilt from the copied events
        (`projections`, default: this ledger's own) and verified before it commits. See
        `ledger.copy` for the guarantees.
        """
        from ledger.copy import copy

        chosen = self.projections[1:] if projections is None else projections
        return copy(self, target, chosen, batch_size=batch_size, progress=progress)

    def sync(self, timeout: float = 5.0) -> bool:
        """Wait until the global chain holds every committed event (PostgreSQL, whose
        sequencer runs after commit); True at once on SQLite, which chains as it writes."""
        return True

    def _check_chain(self) -> None:
        """Raise `ChainBroken` at the first event that does not link (a whole walk, paged)."""
        session = self._s
        broken = session.guarded(self._chain.walk, session.conn)[2]
        if broken is not None:
            raise ChainBroken(broken.position, "its content does not give its stored hash")

    def _restore(self, records: Sequence[Record], *, relink: bool = False) -> None:
        """Store `records` after the head, and apply them to the projections (`copy_to`).

        Inside this thread's write transaction. Versions, times and keys are the records'
        own; so are positions and hashes unless `relink` (records from a ledger that chains
        differently: they are numbered and linked here). Each must follow the one before
        it (`ChainBroken`, `InvalidAppend`: nothing of the call is kept). Onto an empty
        ledger, the projections' tables are emptied first (no events: no rows).
        """
        session = self._s
        if not session.joinable():
            raise ValueError("_restore() needs this thread's write transaction")
        session.join(self._store_verbatim, session, records, relink)

    def _store_verbatim(self, s: Session, records: Sequence[Record], relink: bool) -> None:
        conn = s.conn
        position, previous = s.tip or verify.checked_tip(conn)
        empty = position == 0
        if relink:
            records = _relinked(records, position, previous)
        rows: list[tuple[Any, ...]] = []
        for record in records:
            if record.position != position + 1:
                reason = f"position {record.position} does not follow the head {position}"
                raise InvalidAppend(record.stream, reason)
            row = stored_row(record)
            verify.check_link(previous, row)
            rows.append(row)
            position, previous = record.position, record.hash
        s.partial = True
        if empty:
            clear(conn, self.projections)
        self._insert_rows(conn, rows)
        s.tip = (position, previous)
        s.versions.clear()  # the streams moved without `_write` counting them
        self._project_runs(s.tx, records)

    def _project_runs(self, tx: Tx, records: Sequence[Record]) -> None:
        """Apply restored records to the projections, each run of one stream as one batch.

        As its appends were (one statement per run, not per event: a round trip each on
        PostgreSQL); rows end as `apply` of each in turn would leave them (`Projection`),
        which `copy_to`'s verify checks.
        """
        for _, run in itertools.groupby(records, key=_stream):
            batch = list(run)
            for apply in self._applies:
                apply(tx, batch)

    def _write(
        self, s: Session, stream: str, batch: Batch, expected: int | None, key: str | None
    ) -> Appended:
        conn = s.conn
        if key is not None and (earlier := find_repeat(conn, stream, batch, expected, key)):
            return earlier
        version = s.versions.get(stream)
        probed = True
        if version is None and expected == 0 and batch and self._unprobed_new_streams:
            version, probed = 0, False  # new: the UNIQUE index checks it (see `_insert`)
        elif version is None:
            version = conn.execute(_VERSION, (stream,)).fetchone()[0] or 0
        if expected is not None and expected != version:
            raise ConcurrencyError(stream, expected, version)
        if not batch:
            return Appended(stream, 0, 0, version)
        position, previous = s.tip or verify.checked_tip(conn)
        if s.recorded_at is None:  # one time for the whole transaction: when it commits
            s.recorded_at = now_text()
        first, recorded_at, rows = position + 1, s.recorded_at, []
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
        s.partial = True  # from here a failure leaves part of the batch written
        try:
            _insert(conn, rows)
        except sqlite3.IntegrityError as exc:
            if probed or _CLASH not in str(exc):
                raise
            s.partial = False  # the first statement failed whole: nothing was written
            found = conn.execute(_VERSION, (stream,)).fetchone()[0] or 0
            raise ConcurrencyError(stream, 0, found) from exc
        s.tip, s.versions[stream] = (position, previous), version
        records = [
            Record(row[0], stream, row[2], row[3], data, recorded_at, row[6], row[7])
            for row, (_, data) in zip(rows, batch, strict=True)
        ]
        for apply in self._applies:
            apply(s.tx, records)
        return Appended(stream, first, len(rows), version)


def stored_row(record: Record) -> verify.Row:
    """The events-table row of `record` (its columns in `EVENT_COLUMNS` order)."""
    return (
        record.position,
        record.stream,
        record.version,
        record.type,
        record.data.decode(),
        record.recorded_at,
        record.idempotency_key,
        record.hash,
    )


def _insert(conn: Conn, rows: list[tuple[Any, ...]]) -> None:
    """Insert the rows, as few multi-row statements as the parameter limit allows.

    A clash on the first statement leaves nothing written (SQLite undoes a failed
    statement whole, and the transaction goes on), and the first row is the one a stale
    version clashes on. PostgreSQL aborts the whole transaction on any failed statement,
    so its ledger probes the version first and leaves the index as the backstop.
    """
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        conn.execute(_insert_sql(len(chunk)), [value for row in chunk for value in row])


@functools.cache
def _insert_sql(count: int) -> str:
    return _INSERT + ", ".join([_ROW] * count)


def _relinked(records: Sequence[Record], position: int, previous: str) -> list[Record]:
    """`records` numbered and chained after (`position`, `previous`), their content kept."""
    out = []
    for r in records:
        position += 1
        previous = chain_hash(
            previous,
            position,
            r.stream,
            r.version,
            r.type,
            r.data,
            r.recorded_at,
            r.idempotency_key,
        )
        out.append(msgspec.structs.replace(r, position=position, hash=previous, seq=0))
    return out


def _stream(record: Record) -> str:
    return record.stream


def _batched(projection: Projection) -> Callable[[Tx, list[Record]], None]:
    """The projection's `apply_batch` if it has one, else its `apply` for each record."""
    batch = getattr(projection, "apply_batch", None)
    if batch is not None:
        return batch  # type: ignore[no-any-return]
    apply = projection.apply

    def each(tx: Tx, records: list[Record]) -> None:
        for record in records:
            apply(tx, record)

    return each


def _after_fork_in_child() -> None:
    """A forked child must not use its parent's connections or lock file (both shared)."""
    for ledger in list(_OPEN):
        ledger._forked = ledger._forked or os.getppid()
        ledger._local = threading.local()


_OPEN: weakref.WeakSet[Ledger] = weakref.WeakSet()
os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_tip(session: Session) -> None:
    """Before a write: the last event must match its link, else every write is refused."""
    session.tip = verify.checked_tip(session.conn)
