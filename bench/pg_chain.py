"""PostgreSQL writes: one global chain in each transaction, or stream chains + a sequencer.

DECISION: design B, per-key advisory xact locks + per-stream chains in the transaction +
one sequencer building the gapless global chain after commit.

Measured with `python -m bench.pg_chain $ORDERFLOW_TEST_PG_DSN 6` (private PostgreSQL 15,
fsync on, synchronous_commit on; 2 cores shared with other people's test runs: the load
average was 3.8-7.5 throughout). Commits/s per round (rounds interleave, and within a level
A, B, C run back to back), then best and median:

    procs  A (global lock, chain in tx)  B (per-key + sequencer)   C (B, no sequencer)
    1      642 / 237 / 190   best 642    410 / 190 / 166   410     276 / 286 / 176   286
    2      358 / 260 / 187        358    332 / 328 / 397   397     388 / 346 / 282   388
    4      148 / 177 / 178        178    306 / 288 / 372   372     305 / 391 / 498   498
    8      139 /  73 / 130        139     64 / 156 / 302   302     464 / 254 / 388   464
    SQLite, one writer, FULL, same shape: 1890 / 293 / 238 (best 1890, median 293)

An earlier 5 s run at lower load (1.2-5.6) gave best A 717/565/591/342, B 598/1050/568/530,
C 730/1062/622/631 at 1/2/4/8, SQLite 2270/868/542. Rounds of one level differ by up to 5x,
so compare designs within a round (same minute): at 8 processes B/A was 0.5, 2.1, 2.3
(this run) and 1.6, 2.1, 3.0 (earlier); C/A 3.3, 3.5, 3.0 and 1.8, 6.8, 4.5. Writers' own
CPU per commit: A 0.75-1.55 ms, B 0.86-1.58, C 0.84-1.33, SQLite 0.39-0.46. Sequencer:
0.016-0.07 ms CPU per event (less as batches grow), lag (insert to sequenced) p50 7-15 ms
at 1 writer, 43-50 ms at 8, p99 23-115 ms except 0.6 and 1.3 s in two loaded rounds at 8;
at most 168 events waiting; caught up within 7 ms of the writers stopping at every level:
it keeps up. Every level's chains re-verified clean from the rows.

Why B. A's lock serialises the whole transaction, not only the flush: on this disk a flush
is cheap (pg_test_fsync: fdatasync 61 us), yet A peaks at one writer (~1.3 ms under the
lock: ~700/s) and falls as processes are added, since a holder preempted mid-transaction
stalls every writer (a convoy). B and C have no global point: they rise to what the CPU
gives, 2-3x A at 8 processes, as the issue found. C beats B by what the sequencer's CPU
costs on 2 cores (clearest at 1 writer); that price buys a gapless, commit-safe global
order, which readers need, so C is no option. The aim (8 workers at 2x SQLite's single
FULL writer) is not met here by any design: a PostgreSQL commit costs its client about
twice a whole SQLite commit, before the server's share, and the 2 cores are shared. A
cannot meet it on any machine (its ceiling is one lock hold); B can where the server has
cores of its own. Assumptions checked on the server on every run (`check_xmin_rule`,
`check_lock_before_write`; tests/bench_figures/test_pg_chain.py): a row of a later xact is
not sequenced while an older one is open, and the older one's row comes first once it
commits; one leader; positions gapless; both chains re-hash from the rows; an edited body
is flagged; and a lock taken after the transaction's first write breaks stream order.

The backend adopted it (ledger/postgres_ledger.py, ledger/sequencer.py,
ledger/verify_streams.py), with these differences from the plan first written here:
- events keep `position`, now an id from a sequence (unique, rising along each stream,
  with gaps), plus `xid`; `chain(seq, position, xid, hash)` is the global order. Records
  read by `read_all` carry their `seq`; `head`, anchors and `tail` speak of it.
- Locks: `Ledger.lock(*keys)` for any key, and every stream read or appended in a write
  transaction is locked first (a settle takes its webhook and its order's streams in one
  statement; a reservation its SKUs, sorted). A lock taken after the first write is not
  refused as such: only when the stream's tip was written by a younger transaction (the
  one case that would put the stream out of order in the chain) is the transaction
  refused, as `TransactionConflict`, which settles run again.
- Reads of this ledger's own commits wait (bounded) for the sequencer; others' do not.
- The sequencer thread ends after 5 s without commits in its process (a commit restarts
  it), so an idle open ledger holds no connection for it.

The run: a settle-shaped transaction (lock, read three stream tips, insert 7 events of
300-1,500-byte JSON across an order, its flow and a webhook, upsert two projection rows,
move one stock row, insert the webhook's dedup row, commit) from 1, 2, 4 and 8 writer
processes, each design for SECONDS, every level in each of ROUNDS rounds, in schemas of its
own that are dropped afterwards; beside it, the same shape from one plain-sqlite3 writer
(WAL, synchronous=FULL), in the same run.
  A  today's: one global advisory xact lock; the global chain read, hashed, inserted in it.
  B  per-key advisory xact locks (order, webhook; sorted), per-stream chains in the
     transaction, and one sequencer process building the global chain after commit.
  C  B without the sequencer (what the sequencer costs the writers).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
import psycopg
from psycopg import errors as pg_errors

from ledger import GENESIS
from ledger.codec import chain_hash, now_text

Design = Literal["A", "B", "C"]
DESIGNS: tuple[Design, ...] = ("A", "B", "C")
PROCESSES = (1, 2, 4, 8)
ROUNDS = 3  # the cores are shared: levels interleave by round, and best and median print
ORDERS = 10_000  # settles pick an order at random: per-key locks rarely collide, as in a shop
SKUS = 100  # each settle moves one stock row: a hot row would serialise like a global lock
BATCH = 2_000  # most rows the sequencer links per transaction
SEQUENCER_IDLE = 0.005  # seconds to wait once caught up: polling is CPU the writers need
STREAM_EVENTS = (("order", 2), ("flow", 4), ("webhook", 1))  # 7 events per settle
Conn = psycopg.Connection[tuple[Any, ...]]


# --- pure parts: keys, links, bodies, figures, verification ---------------------------------


def lock_key(scope: str, key: str) -> int:
    """A signed 64-bit advisory lock key for `key` within `scope` (the ledger's schema)."""
    digest = hashlib.blake2b(f"{scope}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def stream_link(previous: str, stream: str, version: int, type_: str, data: str, at: str) -> str:
    """An event's link in its stream's chain: the ledger's row hash, the version as position."""
    return chain_hash(previous, version, stream, version, type_, data.encode(), at, None)


def global_link(previous: str, position: int, stream_hash: str) -> str:
    """A sequenced event's link in the global chain.

    The stream hash already commits to every field of the row (stream and version too),
    so the global link needs only it: the sequencer never reads event bodies, and no
    backend-local id enters a hash (`ledger copy` keeps the chain).
    """
    return hashlib.sha256(f"{previous}\n{position}\n{stream_hash}".encode()).hexdigest()


def body(rng: random.Random, order: str, kind: str) -> str:
    """A JSON event body of 300-1,500 bytes."""
    pad = "x" * rng.randrange(260, 1_440)
    return msgspec.json.encode({"order_id": order, "kind": kind, "note": pad}).decode()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile of `values` (nearest rank; 0.0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


EventRow = tuple[int, str, int, str, str, str, str]  # id, stream, version, type, data, at, hash
ChainRow = tuple[int, int, str]  # position, event_id, hash


def verify_global_in_tx(rows: Iterable[tuple[int, str, int, str, str, str, str]]) -> list[str]:
    """Design A's check: rows (position, stream, version, type, data, at, hash) in order."""
    problems, previous, expected = [], GENESIS, 1
    for position, stream, version, type_, data, at, stored in rows:
        if position != expected:
            problems.append(f"gap: position {position} where {expected} was due")
        link = chain_hash(previous, position, stream, version, type_, data.encode(), at, None)
        if link != stored:
            problems.append(f"position {position}: hash does not follow")
        previous, expected = stored, position + 1
    return problems


def verify_streams(events: Iterable[EventRow]) -> tuple[list[str], dict[int, str]]:
    """Every stream chain re-hashed from its rows; (problems, event id -> stored hash)."""
    by_stream: dict[str, list[EventRow]] = {}
    for row in events:
        by_stream.setdefault(row[1], []).append(row)
    problems, hashes = [], {}
    for stream, rows in by_stream.items():
        previous = GENESIS
        for number, (event_id, _, version, type_, data, at, stored) in enumerate(
            sorted(rows, key=lambda r: r[2]), start=1
        ):
            if version != number:
                problems.append(f"{stream}: version {version} where {number} was due")
            if stream_link(previous, stream, version, type_, data, at) != stored:
                problems.append(f"{stream} v{version}: hash does not follow")
            previous, hashes[event_id] = stored, stored
    return problems, hashes


def verify_sequenced(events: Sequence[EventRow], chain: Iterable[ChainRow]) -> list[str]:
    """Design B's check: stream chains, then a gapless global chain over all of them.

    Also that the global order keeps each stream's order (what projections rely on).
    """
    problems, hashes = verify_streams(events)
    where = {row[0]: (row[1], row[2]) for row in events}
    last_version: dict[str, int] = {}
    previous, expected, count = GENESIS, 1, 0
    for position, event_id, stored in chain:
        count += 1
        if position != expected:
            problems.append(f"gap: position {position} where {expected} was due")
        if global_link(previous, position, hashes.get(event_id, "")) != stored:
            problems.append(f"position {position}: global hash does not follow")
        stream, version = where.get(event_id, ("?", 0))
        if version <= last_version.get(stream, 0):
            problems.append(f"position {position}: {stream} v{version} after a later version")
        last_version[stream] = version
        previous, expected = stored, position + 1
    if count != len(events):
        problems.append(f"{count} of {len(events)} events sequenced")
    return problems


# --- the schema ----------------------------------------------------------------------------


def ddl(design: Design) -> list[str]:
    """The bench tables for `design`: the events as the backend would hold them, projections."""
    # A keeps today's columns (position and global hash in the row); B/C carry the writer's
    # xid instead, indexed with id for the sequencer's (xid, id) cursor.
    extra = (
        "position BIGINT NOT NULL UNIQUE"
        if design == "A"
        else "xid xid8 NOT NULL DEFAULT pg_current_xact_id()"
    )
    statements = [
        "CREATE TABLE events (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
        ' stream TEXT COLLATE "C" NOT NULL, version BIGINT NOT NULL, type TEXT NOT NULL,'
        f" data TEXT NOT NULL, recorded_at TEXT NOT NULL, hash TEXT NOT NULL, {extra},"
        " UNIQUE (stream, version))",
        "CREATE TABLE orders (order_id TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " version BIGINT NOT NULL, updated_id BIGINT NOT NULL)",
        "CREATE TABLE flows (flow_id TEXT PRIMARY KEY, status TEXT NOT NULL,"
        " awaits TEXT, updated_id BIGINT NOT NULL)",
        "CREATE TABLE stock (sku TEXT PRIMARY KEY, reserved BIGINT NOT NULL, sold BIGINT NOT NULL)",
        "CREATE TABLE processed (key TEXT PRIMARY KEY, order_id TEXT NOT NULL)",
        f"INSERT INTO stock SELECT 'sku' || n, 1000000000, 0 FROM generate_series(0, {SKUS - 1}) n",
    ]
    if design != "A":
        statements += [
            "CREATE INDEX events_xid_id ON events (xid, id)",
            "CREATE TABLE chain (position BIGINT PRIMARY KEY, event_id BIGINT NOT NULL UNIQUE,"
            " xid xid8 NOT NULL, hash TEXT NOT NULL)",
        ]
    return statements


def connect(dsn: str, schema: str) -> Conn:
    """An autocommit connection (the backend sends BEGIN/COMMIT itself) in `schema`."""
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"SET search_path = {schema}; SET synchronous_commit = on")
    return conn


@contextmanager
def bench_schema(dsn: str, design: Design) -> Iterator[str]:
    """A fresh schema holding `design`'s tables; dropped (with its sessions ended) after."""
    schema = f"chainbench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            with connect(dsn, schema) as conn, conn.transaction():
                for statement in ddl(design):
                    conn.execute(statement)
            yield schema
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


# --- the writers ---------------------------------------------------------------------------

_TIPS = (
    "SELECT s, coalesce(t.version, 0), coalesce(t.hash, %s) FROM unnest(%s::text[]) s"
    " LEFT JOIN LATERAL (SELECT version, hash FROM events WHERE stream = s"
    " ORDER BY version DESC LIMIT 1) t ON true"
)
_GLOBAL_TIP = "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"


@dataclass
class Settle:
    """One settle's inputs: the order, the delivery, the SKU, bodies per stream."""

    order: str
    webhook: str
    sku: str
    events: list[tuple[str, str, str]]  # (stream, type, data)

    @classmethod
    def make(cls, rng: random.Random, webhook: str) -> Settle:
        order = f"o{rng.randrange(ORDERS)}"
        ids = {"order": order, "flow": order, "webhook": webhook}
        events = [
            (f"{kind}:{ids[kind]}", f"{kind.title()}Event{n}", body(rng, order, kind))
            for kind, count in STREAM_EVENTS
            for n in range(count)
        ]
        return cls(order, webhook, f"sku{rng.randrange(SKUS)}", events)


def _chained(settle: Settle, tips: dict[str, tuple[int, str]]) -> list[tuple[Any, ...]]:
    """(stream, version, type, data, at, stream hash) per event, linked to its stream's tip."""
    rows, at = [], now_text()
    for stream, type_, data in settle.events:
        version, previous = tips[stream]
        link = stream_link(previous, stream, version + 1, type_, data, at)
        rows.append((stream, version + 1, type_, data, at, link))
        tips[stream] = (version + 1, link)
    return rows


def _insert(conn: Conn, columns: str, rows: list[tuple[Any, ...]]) -> int:
    """Insert the rows in one statement; the last event's id (projections store it)."""
    marks = ", ".join(["(" + ", ".join(["%s"] * len(rows[0])) + ")"] * len(rows))
    sql = f"INSERT INTO events ({columns}) VALUES {marks} RETURNING id"
    cursor = conn.execute(sql, [value for row in rows for value in row])
    return int(cursor.fetchall()[-1][0])


def _project(conn: Conn, settle: Settle, version: int, last_id: int) -> None:
    """The settle's projection writes: order and flow rows, one stock row, the dedup row."""
    conn.execute(
        "INSERT INTO orders VALUES (%s, 'fulfilled', %s, %s) ON CONFLICT (order_id) DO UPDATE"
        " SET status = excluded.status, version = excluded.version,"
        " updated_id = excluded.updated_id",
        (settle.order, version, last_id),
    )
    conn.execute(
        "INSERT INTO flows VALUES (%s, 'completed', NULL, %s) ON CONFLICT (flow_id) DO UPDATE"
        " SET status = excluded.status, awaits = NULL, updated_id = excluded.updated_id",
        (settle.order, last_id),
    )
    conn.execute(
        "UPDATE stock SET reserved = reserved - 1, sold = sold + 1 WHERE sku = %s", (settle.sku,)
    )
    conn.execute("INSERT INTO processed VALUES (%s, %s)", (settle.webhook, settle.order))


def settle_once(conn: Conn, design: Design, scope: str, settle: Settle) -> None:
    """One settle transaction in `design`; raises on failure (the caller rolls back)."""
    if design == "A":
        conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({lock_key(scope, 'ledger')})")
    else:  # the keys in sorted order, so two settles can never wait on each other in a cycle
        keys = sorted({lock_key(scope, settle.order), lock_key(scope, settle.webhook)})
        conn.execute("BEGIN; " + "; ".join(f"SELECT pg_advisory_xact_lock({k})" for k in keys))
    streams = sorted({stream for stream, _, _ in settle.events})
    tips = {s: (int(v), str(h)) for s, v, h in conn.execute(_TIPS, (GENESIS, streams))}
    rows = _chained(settle, tips)
    if design == "A":  # today's: the global chain too, under the global lock
        tip = conn.execute(_GLOBAL_TIP).fetchone()
        position, previous = (int(tip[0]), str(tip[1])) if tip else (0, GENESIS)
        linked = []
        for stream, version, type_, data, at, _ in rows:
            position += 1
            previous = chain_hash(
                previous, position, stream, version, type_, data.encode(), at, None
            )
            linked.append((stream, version, type_, data, at, previous, position))
        last_id = _insert(conn, "stream, version, type, data, recorded_at, hash, position", linked)
    else:
        last_id = _insert(conn, "stream, version, type, data, recorded_at, hash", rows)
    _project(conn, settle, tips[f"order:{settle.order}"][0], last_id)
    conn.execute("COMMIT")


@dataclass
class WriterResult:
    """One writer process's commits, commit latencies (s), retries and its own CPU (s)."""

    commits: int = 0
    latencies: list[float] = field(default_factory=list)
    retries: int = 0
    cpu: float = 0.0


def _retryable(exc: psycopg.Error) -> bool:
    return isinstance(exc, pg_errors.DeadlockDetected | pg_errors.SerializationFailure)


def writer(
    dsn: str, schema: str, design: Design, name: str, seconds: float, start: float
) -> WriterResult:
    """Settle until `seconds` after `start` (a shared wall-clock moment)."""
    rng, result = random.Random(name), WriterResult()
    with connect(dsn, schema) as conn:
        while time.time() < start:
            time.sleep(0.0005)  # every writer begins at the same moment
        cpu = time.process_time()  # from the start line: interpreter start-up is not the work
        while time.time() < start + seconds:
            settle = Settle.make(rng, f"evt_{name}_{result.commits}_{result.retries}")
            began = time.perf_counter()
            try:
                settle_once(conn, design, schema, settle)
            except psycopg.Error as exc:
                conn.execute("ROLLBACK")
                if not _retryable(exc):
                    raise
                result.retries += 1
                continue
            result.latencies.append(time.perf_counter() - began)
            result.commits += 1
    result.cpu = time.process_time() - cpu
    return result


# --- the sequencer -------------------------------------------------------------------------

_SAFE_ROWS = (
    "SELECT id, xid::text, hash, recorded_at FROM events"
    " WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) AND (xid, id) > (%s::xid8, %s)"
    " ORDER BY xid, id LIMIT %s"
)
_CURSOR = "SELECT position, event_id, xid::text, hash FROM chain ORDER BY position DESC LIMIT 1"


@dataclass
class Cursor:
    """Where the global chain stands: its last position and hash, and that row's (xid, id)."""

    position: int = 0
    hash: str = GENESIS
    xid: str = "0"
    event_id: int = 0

    @classmethod
    def load(cls, conn: Conn) -> Cursor:
        row = conn.execute(_CURSOR).fetchone()
        return cls() if row is None else cls(int(row[0]), str(row[3]), str(row[2]), int(row[1]))


def lead(conn: Conn, scope: str) -> bool:
    """Take the sequencer's leadership (a session lock: held until this connection ends)."""
    row = conn.execute(
        "SELECT pg_try_advisory_lock(%s)", (lock_key(scope, "sequencer"),)
    ).fetchone()
    return bool(row and row[0])


def sequence_batch(conn: Conn, cursor: Cursor, limit: int = BATCH) -> list[str]:
    """Link the next commit-safe rows into the global chain; their recorded_at texts.

    Safe: inserted by a transaction whose xid is below the snapshot's xmin, so that
    transaction and every older one have ended, and no row can later appear before the
    cursor. REPEATABLE READ: the xmin and the rows come from one snapshot.
    """
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    try:
        rows = conn.execute(_SAFE_ROWS, (cursor.xid, cursor.event_id, limit)).fetchall()
        if not rows:
            conn.execute("COMMIT")
            return []
        position, previous, links = cursor.position, cursor.hash, []
        for event_id, xid, stream_hash, _ in rows:
            position += 1
            previous = global_link(previous, position, stream_hash)
            links.append((position, event_id, xid, previous))
        with conn.cursor().copy("COPY chain (position, event_id, xid, hash) FROM STDIN") as copy:
            for link in links:
                copy.write_row(link)
        # followers (tail --follow, timer workers) wake on this, sent once per batch
        conn.execute("SELECT pg_notify('orderflow_chain', %s)", (str(position),))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    cursor.position, cursor.hash, cursor.xid, cursor.event_id = (
        position,
        previous,
        rows[-1][1],
        rows[-1][0],
    )
    return [str(row[3]) for row in rows]


@dataclass
class SequencerResult:
    """How the sequencer kept up: per-event lag (s), most events waiting, drain time (s)."""

    sequenced: int = 0
    cpu: float = 0.0
    lags: list[float] = field(default_factory=list)
    backlog_max: int = 0
    drained_after: float = -1.0  # seconds after the writers stopped; -1: never caught up
    batches: int = 0


def _backlog(conn: Conn, cursor: Cursor) -> int:
    """Events inserted but not yet sequenced (rolled-back inserts count too: ids have gaps)."""
    row = conn.execute("SELECT last_value FROM events_id_seq").fetchone()
    return int(row[0]) - cursor.position if row else 0


def sequencer(dsn: str, schema: str, writers_done: Any, result_queue: Any) -> None:
    """Lead, then link batches until the writers are done and every event is in the chain."""
    result, stopped = SequencerResult(), None
    with connect(dsn, schema) as conn:
        if not lead(conn, schema):
            raise RuntimeError("another sequencer leads")
        cursor, cpu = Cursor.load(conn), time.process_time()
        while True:
            stamps = sequence_batch(conn, cursor)
            now = time.time()
            result.lags.extend(now - datetime.fromisoformat(at).timestamp() for at in stamps)
            result.sequenced += len(stamps)
            result.batches += bool(stamps)
            waiting = _backlog(conn, cursor)
            result.backlog_max = max(result.backlog_max, waiting)
            if stopped is None and writers_done.is_set():
                stopped = now
            if stopped is not None and waiting <= 0:
                result.drained_after = now - stopped
                break
            if stopped is not None and now - stopped > 60:
                break  # report it as never caught up rather than run forever
            if len(stamps) < BATCH:
                time.sleep(SEQUENCER_IDLE)
    result.cpu = time.process_time() - cpu
    result_queue.put(result)


# --- SQLite, the same shape from one writer -------------------------------------------------


def sqlite_writer(path: str, seconds: float, start: float) -> WriterResult:
    """One plain-sqlite3 writer (WAL, synchronous=FULL) settling until `seconds` after `start`."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, stream TEXT NOT NULL, version INTEGER"
        " NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL, recorded_at TEXT NOT NULL,"
        " hash TEXT NOT NULL, UNIQUE (stream, version)) STRICT;"
        "CREATE TABLE orders (order_id TEXT PRIMARY KEY, status TEXT, version INTEGER,"
        " updated_id INTEGER);"
        "CREATE TABLE flows (flow_id TEXT PRIMARY KEY, status TEXT, awaits TEXT,"
        " updated_id INTEGER);"
        "CREATE TABLE stock (sku TEXT PRIMARY KEY, reserved INTEGER, sold INTEGER);"
        "CREATE TABLE processed (key TEXT PRIMARY KEY, order_id TEXT);"
    )
    conn.executemany(
        "INSERT INTO stock VALUES (?, 1000000000, 0)", [(f"sku{n}",) for n in range(SKUS)]
    )
    rng, result = random.Random("sqlite"), WriterResult()
    while time.time() < start:
        time.sleep(0.0005)
    cpu = time.process_time()
    while time.time() < start + seconds:
        settle = Settle.make(rng, f"evt_sqlite_{result.commits}")
        began = time.perf_counter()
        _sqlite_settle(conn, settle)
        result.latencies.append(time.perf_counter() - began)
        result.commits += 1
    conn.close()
    result.cpu = time.process_time() - cpu
    return result


def _sqlite_settle(conn: sqlite3.Connection, settle: Settle) -> None:
    """Design A's transaction on SQLite (one writer: the global chain costs no lock there)."""
    conn.execute("BEGIN IMMEDIATE")
    tips = {}
    for stream in {stream for stream, _, _ in settle.events}:
        row = conn.execute(
            "SELECT version FROM events WHERE stream = ? ORDER BY version DESC LIMIT 1", (stream,)
        ).fetchone()
        tips[stream] = (row[0] if row else 0, GENESIS)
    tip = conn.execute(
        "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
    ).fetchone()
    position, previous = tip if tip else (0, GENESIS)
    for stream, type_, data in settle.events:
        version, at = tips[stream][0] + 1, now_text()
        tips[stream] = (version, "")
        position += 1
        previous = chain_hash(previous, position, stream, version, type_, data.encode(), at, None)
        conn.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (position, stream, version, type_, data, at, previous),
        )
    version = tips[f"order:{settle.order}"][0]
    conn.execute(
        "INSERT OR REPLACE INTO orders VALUES (?, 'fulfilled', ?, ?)",
        (settle.order, version, position),
    )
    conn.execute(
        "INSERT OR REPLACE INTO flows VALUES (?, 'completed', NULL, ?)", (settle.order, position)
    )
    conn.execute(
        "UPDATE stock SET reserved = reserved - 1, sold = sold + 1 WHERE sku = ?", (settle.sku,)
    )
    conn.execute("INSERT INTO processed VALUES (?, ?)", (settle.webhook, settle.order))
    conn.execute("COMMIT")


# --- running the levels --------------------------------------------------------------------


@dataclass
class Level:
    """One design at one process count, one round."""

    design: str
    processes: int
    rate: float
    p50_ms: float
    p99_ms: float
    retries: int
    client_cpu_ms: float  # the writer processes' own CPU per commit (not the server's)
    load: float = 0.0  # the machine's 1-minute load average as the level began
    sequencer: SequencerResult | None = None
    problems: list[str] = field(default_factory=list)


def _summary(
    design: str, processes: int, seconds: float, results: list[WriterResult], load: float
) -> Level:
    latencies = [value for result in results for value in result.latencies]
    return Level(
        design,
        processes,
        sum(result.commits for result in results) / seconds,
        percentile(latencies, 0.50) * 1000,
        percentile(latencies, 0.99) * 1000,
        sum(result.retries for result in results),
        sum(r.cpu for r in results) * 1000 / max(1, sum(r.commits for r in results)),
        load,
    )


def run_level(dsn: str, design: Design, processes: int, seconds: float) -> Level:
    """`processes` writers (and for B the sequencer) on a fresh schema; then its chains checked."""
    context = multiprocessing.get_context("spawn")
    with bench_schema(dsn, design) as schema:
        done, queue, load = context.Event(), context.Queue(), os.getloadavg()[0]
        runner = None
        if design == "B":
            runner = context.Process(target=sequencer, args=(dsn, schema, done, queue))
            runner.start()
        start = time.time() + 1.5  # spawned interpreters need the time to import
        with context.Pool(processes) as pool:
            jobs = [(dsn, schema, design, f"p{n}", seconds, start) for n in range(processes)]
            results = pool.starmap(writer, jobs)
        done.set()
        level = _summary(design, processes, seconds, results, load)
        if runner is not None:
            level.sequencer = queue.get(timeout=120)
            runner.join()
        with connect(dsn, schema) as conn:
            level.problems = check_chains(conn, design)
    return level


def check_chains(conn: Conn, design: Design) -> list[str]:
    """Re-verify the chains `design` wrote, from the stored rows."""
    if design == "A":
        rows = conn.execute(
            "SELECT position, stream, version, type, data, recorded_at, hash FROM events"
            " ORDER BY position"
        ).fetchall()
        return verify_global_in_tx(rows)
    events = conn.execute(
        "SELECT id, stream, version, type, data, recorded_at, hash FROM events"
    ).fetchall()
    if design == "C":
        return verify_streams(events)[0]
    chain = conn.execute("SELECT position, event_id, hash FROM chain ORDER BY position").fetchall()
    return verify_sequenced(events, chain)


def sqlite_level(seconds: float) -> Level:
    """SQLite's single writer (FULL) for the same shape, in a process of its own."""
    context, load = multiprocessing.get_context("spawn"), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pg-chain-") as tmp, context.Pool(1) as pool:
        path = str(Path(tmp) / "settle.db")
        result = pool.apply(sqlite_writer, (path, seconds, time.time() + 1.5))
    return _summary("SQLite", 1, seconds, [result], load)


# --- design B's assumptions, checked on the real server ------------------------------------


def _append(conn: Conn, stream: str) -> None:
    """Append one event to `stream`, linked to its tip (the caller holds what it needs)."""
    tips = {s: (int(v), str(h)) for s, v, h in conn.execute(_TIPS, (GENESIS, [stream]))}
    version, previous = tips[stream]
    at, data = now_text(), '{"check": true}'
    link = stream_link(previous, stream, version + 1, "Checked", data, at)
    conn.execute(
        "INSERT INTO events (stream, version, type, data, recorded_at, hash)"
        " VALUES (%s, %s, 'Checked', %s, %s, %s)",
        (stream, version + 1, data, at, link),
    )


def _sequenced_streams(conn: Conn) -> list[str]:
    rows = conn.execute(
        "SELECT e.stream FROM chain c JOIN events e ON e.id = c.event_id ORDER BY c.position"
    )
    return [str(row[0]) for row in rows]


def _require(condition: bool, failure: str) -> None:
    if not condition:
        raise RuntimeError(f"design B's assumption failed: {failure}")


def check_xmin_rule(dsn: str) -> list[str]:
    """An older transaction that commits later is never overtaken; one leader; a tamper shows."""
    with (
        bench_schema(dsn, "B") as schema,
        connect(dsn, schema) as early,
        connect(dsn, schema) as late,
        connect(dsn, schema) as seq,
        connect(dsn, schema) as rival,
    ):
        _require(lead(seq, schema) and not lead(rival, schema), "two sequencers both lead")
        early.execute("BEGIN")
        _append(early, "s:early")  # its xid is now assigned, and older than late's
        late.execute("BEGIN")
        _append(late, "s:late")
        late.execute("COMMIT")
        cursor = Cursor()
        visible = [str(r[0]) for r in seq.execute("SELECT stream FROM events")]
        _require(not sequence_batch(seq, cursor), "a row sequenced while an older xact was open")
        early.execute("COMMIT")
        sequence_batch(seq, cursor)
        order = _sequenced_streams(seq)
        _require(order == ["s:early", "s:late"], f"sequenced as {order}")
        _require(not check_chains(seq, "B"), "the global chain does not verify")
        seq.execute("UPDATE events SET data = data || ' ' WHERE stream = 's:early'")
        _require(bool(check_chains(seq, "B")), "an edited body went unnoticed")
    return [
        f"xmin rule: with an older writer open, a reader saw {visible} but the sequencer took"
        f" nothing; after it committed: {order} (its xid order), positions 1..2 gapless",
        "leadership: a second pg_try_advisory_lock on the sequencer key was refused",
        "verify: stream and global chains re-hash from the rows; an edited body is flagged",
    ]


def check_lock_before_write(dsn: str) -> list[str]:
    """Why every advisory lock must come before a transaction's first write.

    A transaction that wrote (so has an xid) and then waits for a stream's lock appends
    after the holder, yet sorts before it by xid: the global order would break the stream's.
    """
    with (
        bench_schema(dsn, "B") as schema,
        connect(dsn, schema) as first,
        connect(dsn, schema) as second,
        connect(dsn, schema) as seq,
    ):
        key = lock_key(schema, "k")
        first.execute("BEGIN")
        _append(first, "s:other")  # an xid, before the lock
        second.execute(f"BEGIN; SELECT pg_advisory_xact_lock({key})")
        _append(second, "s:k")
        second.execute("COMMIT")
        assigned = first.execute("SELECT pg_current_xact_id_if_assigned()").fetchone()
        first.execute(f"SELECT pg_advisory_xact_lock({key})")
        _append(first, "s:k")  # version 2, by the older xid
        first.execute("COMMIT")
        lead(seq, schema)
        sequence_batch(seq, Cursor())
        problems = check_chains(seq, "B")
        _require(any("after a later version" in p for p in problems), "the break went unseen")
    return [
        "lock before write: a lock taken after the transaction's first write (xid"
        f" {assigned[0] if assigned else '?'} already assigned) let s:k v2 sort before v1;"
        " verify flagged it, so the backend must refuse a lock once"
        " pg_current_xact_id_if_assigned() is not null",
    ]


# --- the report ----------------------------------------------------------------------------


def _line(level: Level, sqlite_rate: float) -> str:
    text = (
        f"{level.design:<7}{level.processes:>3}{level.rate:>10.0f}/s{level.p50_ms:>8.1f}"
        f"{level.p99_ms:>8.1f}{level.rate / sqlite_rate:>7.2f}x{level.retries:>4}"
        f"{level.client_cpu_ms:>7.2f}{level.load:>6.1f}"
    )
    seq = level.sequencer
    if seq is not None:
        text += (
            f"   lag p50/p99 {percentile(seq.lags, 0.5) * 1000:.0f}/"
            f"{percentile(seq.lags, 0.99) * 1000:.0f} ms, waiting max {seq.backlog_max},"
            f" drained {seq.drained_after * 1000:.0f} ms after, {seq.batches} batches,"
            f" CPU {seq.cpu * 1000 / max(1, seq.sequenced):.3f} ms/event"
        )
    if level.problems:
        text += f"   VERIFY FAILED: {level.problems[:3]}"
    return text


def _table(levels: list[Level]) -> list[str]:
    """Per design and level: every round, best, median, spread, and the ratios to SQLite's."""
    lite = [lv.rate for lv in levels if lv.design == "SQLite"]
    best, middle = max(lite), statistics.median(lite)
    lines = [
        f"SQLite single writer FULL: {' / '.join(f'{r:.0f}' for r in lite)} commits/s"
        f" (best {best:.0f}, median {middle:.0f})",
        f"{'design':<7}{'procs':>5}{'rounds':>22}{'best':>7}{'median':>8}{'spread':>8}"
        f"{'best/best':>11}{'med/med':>9}",
    ]
    for design in DESIGNS:
        for processes in PROCESSES:
            rates = [lv.rate for lv in levels if (lv.design, lv.processes) == (design, processes)]
            if not rates:
                continue
            median = statistics.median(rates)
            spread = (max(rates) - min(rates)) / median
            rounds = " / ".join(f"{r:.0f}" for r in rates)
            lines.append(
                f"{design:<7}{processes:>5}{rounds:>22}{max(rates):>7.0f}{median:>8.0f}"
                f"{spread:>8.0%}{max(rates) / best:>10.2f}x{median / middle:>8.2f}x"
            )
    return lines


def main(argv: list[str]) -> None:
    """Check design B's assumptions, then measure every design at every level, twice."""
    dsn, seconds = argv[0], float(argv[1]) if len(argv) > 1 else 5.0
    for line in check_xmin_rule(dsn) + check_lock_before_write(dsn):
        print(f"check: {line}", flush=True)
    print(
        f"{'design':<7}{'n':>3}{'commits':>12}{'p50 ms':>8}{'p99 ms':>8}{'vs lite':>8}{'rt':>4}"
        f"{'cpu ms':>7}{'load':>6}"
    )
    levels: list[Level] = []
    for _ in range(ROUNDS):  # designs interleave within a level: a noisy minute hits all alike
        levels.append(sqlite_level(seconds))
        print(_line(levels[-1], levels[-1].rate), flush=True)
        lite = levels[-1].rate
        for processes in PROCESSES:
            for design in DESIGNS:
                levels.append(run_level(dsn, design, processes, seconds))
                print(_line(levels[-1], lite), flush=True)
    print("\n".join(["", *_table(levels)]))


if __name__ == "__main__":
    main(sys.argv[1:])
