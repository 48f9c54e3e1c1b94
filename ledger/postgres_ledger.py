"""`PostgresLedger`: the ledger on a PostgreSQL database (psycopg 3), behind `Ledger`.

Concurrency: no global write lock. A write transaction locks what it is about to check
and change (`Ledger.lock`: transaction-scoped advisory locks, one per key, e.g. a flow's
stream, a webhook id, a SKU), and every append locks its own stream before reading the
stream's tip, so writers on different keys commit concurrently while a check-then-act on
one key still holds. `UNIQUE (stream, version)` is the exactly-once backstop. Isolation is
READ COMMITTED: after a lock is granted, the next statement sees the holder's commit.

Tamper evidence comes in two chains: each event links to the one before it in its stream
(written in the transaction), and the sequencer (`ledger.sequencer`, a thread of every
writable ledger, one leader per schema) builds the gapless global chain after commit. So
`head`, `read_all` and anchors speak of global chain positions (`Record.position` stays
the event's own id, unique and increasing along its stream); `verify` checks both chains
(`ledger.verify_streams`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from ledger import postgres_schema, sequencer
from ledger.append import Batch, find_repeat, row_key
from ledger.codec import GENESIS, global_link, now_text, stream_link
from ledger.errors import (
    ConcurrencyError,
    InvalidAppend,
    LedgerError,
    ReadOnlyLedger,
    TransactionConflict,
)
from ledger.listener import Listener
from ledger.postgres import PgConn, PgTx, connect, translate
from ledger.projection import EVENT_COLUMNS, Projection, clear
from ledger.records import Anchor, Appended, Record, VerifyReport
from ledger.schema import APPLICATION_ID
from ledger.sequencer import Sequencer, lock_key
from ledger.store import Ledger, Synchronous
from ledger.transactions import Session
from ledger.tx import Conn, Dialect, Params, Tx
from ledger.verify import Row
from ledger.verify_streams import StreamChains, check_stream_link

_COPY = f"COPY events ({EVENT_COLUMNS}) FROM STDIN"
_GUARDS = (
    "SELECT tgname FROM pg_trigger WHERE tgrelid IN ('events'::regclass, 'chain'::regclass)"
    " AND tgenabled <> 'D'"
)
# A stream's last two events: the tip to link to, checked against the one before it, and
# whether the tip's transaction began writing after this one (then appending here would
# put this event before its predecessor in the global chain: see `_tip`).
_STREAM_TIP = (
    f"SELECT {EVENT_COLUMNS}, xid > pg_current_xact_id() FROM events WHERE stream = ?"
    " ORDER BY version DESC LIMIT 2"
)
_INSERT = (
    "INSERT INTO events (stream, version, type, data, recorded_at, idempotency_key, hash) VALUES "
)
_ROW = "(?, ?, ?, ?, ?, ?, ?)"
_ROWS_PER_INSERT = 100
_READ = (
    f"SELECT {EVENT_COLUMNS}, (SELECT p.hash FROM events p WHERE p.stream = e.stream"
    " AND p.version = e.version - 1) FROM events e WHERE stream = ? AND version > ?"
    " ORDER BY version"
)
# The same inside a write transaction, where the stream is locked first: its last row is
# then the tip an append links to (`_stream_rows`), which saves that append a `_STREAM_TIP`.
_LOCKED_READ = (
    f"SELECT {EVENT_COLUMNS}, (SELECT p.hash FROM events p WHERE p.stream = e.stream"
    " AND p.version = e.version - 1), xid > pg_current_xact_id() FROM events e"
    " WHERE stream = ? AND version > ? ORDER BY version"
)
_READ_ALL = (
    "SELECT e.position, e.stream, e.version, e.type, e.data, e.recorded_at,"
    " e.idempotency_key, e.hash, c.seq FROM chain c JOIN events e ON e.position = c.position"
    " WHERE c.seq > ? ORDER BY c.seq LIMIT ?"
)
_HEAD = "SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1"
_CURSOR = "SELECT xid::text, position FROM chain ORDER BY seq DESC LIMIT 1"
_UNCHAINED_OF = "SELECT 1 FROM events WHERE xid = ?::xid8 AND position > ? LIMIT 1"
# A restore's chain entries, in its own transaction: positions ascend along the chain, as
# the sequencer's order (xid, position) needs.
_ENTER = (
    "INSERT INTO chain (seq, position, xid, hash) SELECT s, p, pg_current_xact_id(), h"
    " FROM unnest(?::bigint[], ?::bigint[], ?::text[]) AS t(s, p, h)"
)
_RESEQUENCE = "SELECT setval('events_position_seq', (SELECT max(position) FROM events))"
SYNC_WAIT = 5.0  # seconds `sync` waits for the sequencer by default (verify, copy)
READ_WAIT = 5.0  # seconds a read waits for this ledger's own commits to be chained


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
    held: set[str]

    def __init__(
        self,
        conn: PgConn,
        path: str,
        schema: str,
        writers: Writers,
        readonly: bool,
        committed: Callable[[int], None],
    ) -> None:
        super().__init__(conn, PgTx(conn, self.at_commit), path, readonly=readonly)
        self._schema = schema
        self._writers = writers
        self._committed = committed  # told the xid of each commit that wrote events
        self.held: set[str] = set()  # the keys this transaction has locked
        self.links: dict[str, str] = {}  # stream -> its tip's hash, read under its lock
        self.wrote: int | None = None  # this transaction's id, once it wrote events
        self.late: list[Callable[[Tx], None]] = []  # `Tx.at_commit` writes still to run
        self._late_tables: frozenset[str] = frozenset()

    def translate(self, exc: Exception) -> LedgerError | None:
        """The typed ledger error for a psycopg failure (None: a programming error)."""
        return translate(exc, self.path) if isinstance(exc, psycopg.Error) else None

    def _open(self) -> bool:
        return self.conn.open

    def _quietly(self, sql: str) -> None:
        self.conn.later(sql)

    def at_commit(self, write: Callable[[Tx], None], tables: Sequence[str]) -> None:
        """Hold `write` back until the commit, or until a statement names one of `tables`
        (see `Tx.at_commit`); at once outside this thread's write transaction."""
        if not self.joinable():
            write(self.tx)
            return
        self.late.append(write)
        self._late_tables |= frozenset(tables)
        self.conn.watch = self._watch

    def _watch(self, sql: str) -> None:
        if any(table in sql for table in self._late_tables):
            self._write_late()

    def _write_late(self) -> None:
        late = self.late
        self._drop_late()
        for write in late:
            write(self.tx)

    def _drop_late(self) -> None:
        self.late, self._late_tables, self.conn.watch = [], frozenset(), None

    def _unlock(self) -> None:
        self.held.clear()  # the advisory locks ended with the transaction
        self._drop_late()  # run before a commit, or rolled back with the rest
        self._writers.leave()

    def finish(self, exc: BaseException | None) -> None:
        """End the outermost transaction (see `Session.finish`); a commit that wrote is told."""
        wrote, self.wrote = self.wrote, None
        super().finish(exc)
        if wrote is not None and exc is None:
            self._committed(wrote)

    def forget(self) -> None:
        """Drop the cached versions and links, and what was locked (a savepoint's rollback
        releases the locks it took; taking one again is harmless)."""
        super().forget()
        self.links.clear()
        self.held.clear()

    def begin(self, timeout: float | None = None) -> None:
        """BEGIN (READ COMMITTED), sent with the first statement; locks come later, per key.

        The cached versions are dropped: another host may have written since.
        """
        if self.readonly:
            raise ReadOnlyLedger(self.path, "it was opened read-only")
        if self.depth == 0 and self._open():
            raise ValueError("a write inside reading(): leave the read snapshot first")
        self.forget()
        self._writers.enter()
        self.conn.later("BEGIN")  # sent with the transaction's first statement
        self.depth, self.owner = 1, threading.get_ident()

    def locked_rows(self, key: str, sql: str, params: Params) -> list[Any]:
        """Lock `key` and read `sql`'s rows in one round trip (two statements in a pipeline,
        so the read sees what the lock waited for)."""
        wanted = key not in self.held
        if wanted:
            self.conn.later(f"SELECT pg_advisory_xact_lock({lock_key(self._schema, key)})")
        rows = self.conn.execute(sql, params).fetchall()
        if wanted:
            self.held.add(key)
        return rows

    def hold(self, keys: tuple[str, ...]) -> None:
        """Advisory transaction locks on `keys` not yet held, in name order, in one round trip.

        Name order, not the keys' hash order: it is the order in which a flow step takes
        its streams one at a time (`flow:` before `order:` before `sku:`), so a settle that
        locks an order's streams at once waits for a step holding the flow without first
        taking the order from it (a deadlock). The wait is bounded by the connection's
        lock_timeout (the ledger's busy timeout).
        """
        wanted = sorted({key for key in keys if key not in self.held})
        if not wanted:
            return
        locks = (f"pg_advisory_xact_lock({lock_key(self._schema, key)})" for key in wanted)
        self.conn.execute("SELECT " + ", ".join(locks))
        self.held.update(keys)


class PostgresLedger(Ledger):
    """The ledger in one schema of a PostgreSQL database; see the module docstring."""

    dialect: ClassVar[Dialect] = "postgresql"
    serialised: ClassVar[bool] = False
    _read_sql: ClassVar[str] = _READ
    _chain = StreamChains()

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
        self.sequencer = Sequencer(connector, schema)
        self._own = 0  # the id of this ledger's last committed transaction that wrote
        self._chained = 0  # the last such id whose events were all seen chained
        self._own_lock = threading.Lock()
        self._listener = Listener(connector)
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
        # UTF8 on the wire whatever the database's encoding: on a SQL_ASCII database psycopg
        # would otherwise hand back every text column as bytes.
        settings = (
            "SET client_encoding = 'UTF8'; "
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

    def _keep_writers_out(self, conn: Conn) -> None:
        # Readers go on; an append waits at its INSERT (after its locks: no deadlock, since
        # this transaction takes none of them) until this one ends.
        conn.execute("LOCK TABLE events IN EXCLUSIVE MODE")

    def _check_read(self, previous: str | None, row: Row) -> None:
        check_stream_link(previous, row)

    def _stream_rows(self, stream: str, after: int) -> Any:
        """See `Ledger._stream_rows`; in a write transaction the stream's tip is remembered."""
        session = _session(self._s)
        if not session.joinable():
            return super()._stream_rows(stream, after)
        rows = session.guarded(session.locked_rows, stream, _LOCKED_READ, (stream, after))
        if rows:
            *tip, previous, later = rows[-1]
            if not later:  # else the append's own probe refuses it (see `_tip`)
                check_stream_link(previous, tuple(tip))
                session.versions[stream], session.links[stream] = int(tip[2]), str(tip[7])
        elif after == 0:
            session.versions[stream], session.links[stream] = 0, GENESIS
        return [row[:-1] for row in rows]

    def _make_session(self, conn: PgConn) -> PgSession:
        return PgSession(conn, self.path, self.schema, self._writers, self.readonly, self._written)

    @contextlib.contextmanager
    def _closing(self) -> Iterator[None]:
        with self._writers.drained(self._busy_timeout):
            # Its commits chained before it goes: the leader may be closing too, and this
            # process's sequencer, a follower until then, may have to lead for a last pass.
            with contextlib.suppress(LedgerError):
                self._see_own_writes()
            yield
        self.sequencer.stop()
        self._listener.close()

    def _written(self, xid: int) -> None:
        """After a commit that wrote: wake the sequencer, and note what reads must see."""
        with self._own_lock:
            self._own = max(self._own, xid)
        self._wake_sequencer()

    def _wake_sequencer(self) -> None:
        if not self._forked:
            self.sequencer.poke()
            self.sequencer.ensure()

    def _see_own_writes(self) -> None:
        """Wait (bounded) until the chain holds this ledger's own commits: read your writes.

        Others' commits are not waited for (the sequencer chains them within moments, and
        an old open transaction elsewhere must not stall every read here).
        """
        session = self._s
        own = self._own
        if session.depth or session._open() or own <= self._chained:
            return
        deadline, pause = time.monotonic() + READ_WAIT, 0.001
        while not session.guarded(_chained, _pg(session.conn), own):
            if time.monotonic() >= deadline:
                return
            if not self.readonly:  # a follower tries to lead at once (the leader may be gone)
                self._wake_sequencer()
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        self._chained = max(self._chained, own)

    # -- the global chain --------------------------------------------------------------

    def sync(self, timeout: float = SYNC_WAIT) -> bool:
        """Wait (at most `timeout`) until the global chain holds every event seen now.

        A writable ledger runs the sequencer itself if no other process leads. False if
        the chain still lags (an older transaction is open, or no sequencer runs).
        """
        if not self.readonly:
            self._wake_sequencer()
        session = self._s
        deadline, pause = time.monotonic() + timeout, 0.001
        while not session.guarded(sequencer.covers, session.conn):
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return True

    def head(self) -> tuple[int, str]:
        """The global chain's last entry and its hash ((0, GENESIS) when empty).

        This ledger's own commits are in it (it waits, bounded, for the sequencer); others'
        may not be yet: `sync()` waits for every commit seen.
        """
        self._see_own_writes()
        return self._chain_tip(_pg(self._s.conn))

    def read_all(self, *, after: int = 0, limit: int | None = None) -> Iterator[Record]:
        """Every event after global chain entry `after`, in the chain's order (see `Ledger`).

        Each record's `seq` is its entry; events not chained yet are not among them (a
        read outside a snapshot first waits, bounded, for the sequencer).
        """
        self._see_own_writes()
        remaining = -1 if limit is None else limit
        while remaining:
            size = 1000 if remaining < 0 else min(remaining, 1000)
            page = self._s.conn.execute(_READ_ALL, (after, size)).fetchall()
            for p, st, v, t, d, at, k, h, seq in page:
                yield Record(p, st, v, t, d.encode(), at, k, h, seq)
            if len(page) < size:
                return
            after = page[-1][8]
            remaining = remaining - len(page) if remaining > 0 else -1

    def wait_for_events(self, after: int, timeout: float) -> bool:
        """See `Ledger.wait_for_events`: woken by the sequencer's NOTIFY, never polling fast."""
        session = self._s
        conn = _pg(session.conn)
        return self._listener.wait(lambda: self._chain_tip(conn)[0] > after, timeout)

    def verify(self, *, expect_head: Anchor | None = None) -> VerifyReport:
        """See `Ledger.verify`; waits (bounded) for the sequencer first, and checks both chains."""
        self.sync()
        return super().verify(expect_head=expect_head)

    def scrub(self, *, expect_head: Anchor | None = None) -> VerifyReport:
        """See `Ledger.scrub`: the chain after the last verified entry, and what is pending."""
        self.sync()
        return super().scrub(expect_head=expect_head)

    # -- appends ------------------------------------------------------------------------

    def _store_verbatim(self, s: Session, records: Sequence[Record], relink: bool) -> None:
        """Store restored records (`Ledger._restore`): each a stream's next version, its
        stream hash kept (checked) or, with `relink`, computed; numbered and given their
        global chain entries in the order given, in this transaction."""
        session = _session(s)
        conn = session.conn
        seq, chained = self._chain_tip(conn)
        position = int(conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()[0])
        empty = position == 0
        events: list[tuple[Any, ...]] = []
        entries: tuple[list[int], list[int], list[str]] = ([], [], [])
        for record in records:
            stream, version = record.stream, record.version
            known = session.versions.get(stream)
            if known is None and version > 1:  # the stream was there before this restore
                tip = session.locked_rows(stream, _STREAM_TIP, (stream,))
                known, session.links[stream] = _tip(tip)
            if version != (known or 0) + 1:
                reason = f"version {version} does not follow version {known or 0}"
                raise InvalidAppend(stream, reason)
            previous = session.links.get(stream, GENESIS)
            position, seq = position + 1, seq + 1
            row = (
                position,
                stream,
                version,
                record.type,
                record.data.decode(),
                record.recorded_at,
                record.idempotency_key,
                record.hash,
            )
            if relink:
                row = (
                    *row[:7],
                    stream_link(
                        previous,
                        stream,
                        version,
                        record.type,
                        record.data,
                        record.recorded_at,
                        record.idempotency_key,
                    ),
                )
            else:
                check_stream_link(previous, row)
            chained = global_link(chained, seq, position, row[7])
            events.append(row)
            for column, value in zip(entries, (seq, position, chained), strict=True):
                column.append(value)  # type: ignore[attr-defined]
            session.versions[stream], session.links[stream] = version, row[7]
        session.partial = True
        if empty:
            clear(conn, self.projections)
        self._insert_rows(conn, events)
        conn.execute(_ENTER, entries)
        conn.execute(_RESEQUENCE)
        session.wrote = int(conn.execute("SELECT pg_current_xact_id()::text").fetchone()[0])
        self._project_runs(
            session.tx,
            [Record(p, st, v, t, d.encode(), at, k, h) for p, st, v, t, d, at, k, h in events],
        )

    def _chain_tip(self, conn: PgConn) -> tuple[int, str]:
        row = conn.execute(_HEAD).fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def _write(
        self, s: Session, stream: str, batch: Batch, expected: int | None, key: str | None
    ) -> Appended:
        session = _session(s)
        conn = session.conn
        version, previous = session.versions.get(stream), session.links.get(stream)
        if stream not in session.held or version is None or previous is None:
            # locked before its tip is read: the tip cannot move under us
            version, previous = _tip(session.locked_rows(stream, _STREAM_TIP, (stream,)))
            session.versions[stream], session.links[stream] = version, previous
        if key is not None and (earlier := find_repeat(conn, stream, batch, expected, key)):
            return earlier
        if expected is not None and expected != version:
            raise ConcurrencyError(stream, expected, version)
        if not batch:
            return Appended(stream, 0, 0, version)
        if session.recorded_at is None:
            session.recorded_at = now_text()
        recorded_at, rows = session.recorded_at, []
        for index, (type_, data) in enumerate(batch):
            version += 1
            stored_key = row_key(key, index)
            previous = stream_link(previous, stream, version, type_, data, recorded_at, stored_key)
            rows.append((stream, version, type_, data.decode(), recorded_at, stored_key, previous))
        session.partial = True  # from here a failure leaves part of the batch written
        positions, xid = _insert_returning(conn, rows)
        session.versions[stream], session.links[stream] = version, previous
        session.wrote = xid
        records = [
            Record(position, stream, row[1], row[2], data, recorded_at, row[5], row[6])
            for position, row, (_, data) in zip(positions, rows, batch, strict=True)
        ]
        for apply in self._applies:
            apply(session.tx, records)
        return Appended(stream, positions[0], len(rows), version)

    def _engine_version(self) -> str:
        return ""  # the report's engine field names SQLite's library; PostgreSQL has none

    @contextlib.contextmanager
    def _scratch(self, conn: Conn) -> Iterator[Tx]:
        """Temporary tables of the same names, shadowing the stored ones until rolled back.

        Inside a savepoint: `verify` may run inside a write transaction, which must find
        its own tables (and search_path) again afterwards. What that transaction holds
        back for its commit (`Tx.at_commit`) is written first: run in here, it would go
        into the scratch tables and be rolled back with them.
        """
        pg = _pg(conn)
        session = _session(self._s)
        if session.joinable():
            session._write_late()
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
        pg = _pg(conn)
        pg.flush()
        with pg.raw.cursor().copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)


def _session(s: Session) -> PgSession:
    if not isinstance(s, PgSession):
        raise TypeError(f"a PostgreSQL ledger was given a {type(s).__name__}")
    return s


def _tip(rows: list[Any]) -> tuple[int, str]:
    """The version and last hash of a stream (its `_STREAM_TIP` rows), after checking that
    event's link (`ChainBroken`).

    Refused (`TransactionConflict`) if the tip was written by a transaction that began
    writing after this one: the global chain orders events by their transaction's id, so
    this event would come before its own predecessor. Only a lock taken after the
    transaction's first write allows that; run again, the transaction takes it first.
    """
    if not rows:
        return 0, GENESIS
    *last, later = rows[0]
    version = last[2]
    before = rows[1][7] if len(rows) > 1 and rows[1][2] == version - 1 else None
    check_stream_link(before, tuple(last))
    if later:
        raise TransactionConflict(
            f"{last[1]!r} was written by a transaction younger than this one: lock it first"
        )
    return int(version), str(last[7])


def _chained(conn: PgConn, xid: int) -> bool:
    """True if every event of transaction `xid` is in the global chain."""
    row = conn.execute(_CURSOR).fetchone()
    if row is None or int(row[0]) < xid:
        return False
    return int(row[0]) > xid or conn.execute(_UNCHAINED_OF, (str(xid), row[1])).fetchone() is None


def _insert_returning(conn: PgConn, rows: list[tuple[Any, ...]]) -> tuple[list[int], int]:
    """Insert the rows (positions from the sequence): (their positions in order, the xid)."""
    positions: list[int] = []
    xid = 0
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        sql = _INSERT + ", ".join([_ROW] * len(chunk)) + " RETURNING position, xid::text"
        found = conn.execute(sql, [value for row in chunk for value in row]).fetchall()
        positions.extend(row[0] for row in found)
        xid = int(found[0][1])
    return positions, xid


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
