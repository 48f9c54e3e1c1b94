"""The global chain on PostgreSQL, built after commit by one sequencer per schema.

Writers on different keys commit concurrently, each event linked only to the one before it
in its stream (`codec.stream_link`). The sequencer gives every committed event its place
in one gapless global order (`chain.seq`), each entry linked to the one before it
(`codec.global_link`), so a lost or reordered event shows as on SQLite's single chain.

Commit-safe order: a batch takes the events whose transaction id is below the oldest
transaction still running (`pg_snapshot_xmin` of its own snapshot), after the last one
chained, in (xid, position) order. Every transaction below that line has ended, so no
event can later appear before one already chained, and the order never changes once
read. Along a stream it is the stream's own order, because a writer locks a stream before
its first write (`Ledger.lock`) and a late lock that could invert it is refused
(`TransactionConflict`, see `PostgresLedger`).

One leader: every writable ledger runs a `Sequencer` thread with its own connection, and
the one that holds the session-level advisory lock `(schema, "sequencer")` builds the
chain, a pass at most every `GATHER` seconds while commits keep coming; the others try
again each second, so the chain survives its leader's death. The primary key on `seq` and
the unique `position` make a second writer fail, never fork the chain. Each batch that
adds entries sends one NOTIFY on `CHANNEL` (payload: schema and new head), for
`tail --follow` and the worker; step transactions never notify (a NOTIFY in every commit
would serialise commits). A transaction left open with an id holds the line back:
sequencing (not writing) waits for it, so set `idle_in_transaction_session_timeout`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from ledger.codec import GENESIS, global_link
from ledger.postgres import PgConn

CHANNEL = "orderflow_chain"
BATCH = 2000  # most events chained per transaction
IDLE = 0.05  # seconds between passes once caught up (a writer's commit wakes it sooner)
# Fewest seconds between passes: a pass per commit would cost every commit a second
# transaction (four round trips and a flush); commits within this gather into one batch.
GATHER = 0.01
RETRY_LEADER = 1.0  # seconds between a follower's tries for the leader's lock
LINGER = 5.0  # seconds without a commit here before the thread ends (a commit restarts it)

_TIP = "SELECT seq, xid::text, position, hash FROM chain ORDER BY seq DESC LIMIT 1"
_READY = (
    "SELECT position, xid::text, hash FROM events WHERE (xid, position) > (?::xid8, ?::bigint)"
    " AND xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY events.xid, position LIMIT ?"
)
_ADD = (
    "INSERT INTO chain (seq, position, xid, hash) SELECT * FROM"
    " unnest(?::bigint[], ?::bigint[], ?::text[]::xid8[], ?::text[])"
)
_LAST_EVENT = (
    "SELECT xid::text, position FROM events ORDER BY events.xid DESC, position DESC LIMIT 1"
)
# (`events.xid`, not `xid`: ORDER BY would take the text output column of that name, and
# '1000' sorts before '999')
_COVERS = (
    "SELECT (SELECT (xid, position) FROM chain ORDER BY seq DESC LIMIT 1) >= (?::xid8, ?::bigint)"
)


def lock_key(schema: str, key: str) -> int:
    """A signed 64-bit advisory lock key for `key` within the ledger's `schema`."""
    digest = hashlib.blake2b(f"{schema}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def sequence_batch(conn: PgConn, schema: str, limit: int = BATCH) -> int:
    """Chain the next committed events (at most `limit`) in one transaction; how many.

    REPEATABLE READ: the line (`pg_snapshot_xmin`) and the rows come from one snapshot.
    """
    conn.later("BEGIN ISOLATION LEVEL REPEATABLE READ")  # one round trip with the tip
    try:
        tip = conn.execute(_TIP).fetchone()
        seq, xid, position, previous = tip if tip else (0, "0", 0, GENESIS)
        rows = conn.execute(_READY, (xid, position, limit)).fetchall()
        if rows:
            seqs, positions, xids, hashes = [], [], [], []
            for event, event_xid, event_hash in rows:
                seq += 1
                previous = global_link(previous, seq, event, event_hash)
                seqs.append(seq)
                positions.append(event)
                xids.append(event_xid)
                hashes.append(previous)
            conn.execute(_ADD, (seqs, positions, xids, hashes))
            payload = f"{schema} {seq}".replace("'", "''")  # (a schema name may hold a quote)
            conn.later(f"SELECT pg_notify('{CHANNEL}', '{payload}')")  # sent with the COMMIT
        conn.execute("COMMIT")
    except BaseException:
        if conn.open:
            conn.execute("ROLLBACK")
        raise
    return len(rows)


def covers(conn: PgConn) -> bool:
    """True if the chain holds every event this connection can see (it may lag commits)."""
    last = conn.execute(_LAST_EVENT).fetchone()
    if last is None:
        return True
    return bool(conn.execute(_COVERS, (last[0], last[1])).fetchone()[0])


class Sequencer:
    """The thread that builds one schema's global chain while it holds the leader's lock.

    Started on demand (`ensure`), in the process that uses it (a forked child starts its
    own); `poke` after a commit wakes it at once; `stop` ends it, after a last pass.
    """

    def __init__(self, connect: Callable[[], PgConn], schema: str) -> None:
        self._connect = connect
        self._schema = schema
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Lock()
        self._try_lead = f"SELECT pg_try_advisory_lock({lock_key(schema, 'sequencer')})"
        self.leader = False
        self.error: BaseException | None = None  # the last failure of a pass (it retries)

    def ensure(self) -> None:
        """Start the thread if it is not running in this process (after `poke`, not before)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._started:
            if self._thread is None or not self._thread.is_alive():
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._run, name=f"orderflow-sequencer-{self._schema}", daemon=True
                )
                self._thread.start()

    def poke(self) -> None:
        """Run a pass now (a commit just added events); then `ensure` the thread runs."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread after a last pass (if it leads), releasing its lock and connection."""
        with self._started:
            thread = self._thread
            self._stopping.set()
            self._wake.set()
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        conn: PgConn | None = None
        active = time.monotonic()
        try:
            while True:
                final = self._stopping.is_set()
                conn, chained = self._pass(conn)
                if final:
                    return
                if chained:  # others' commits keep the leader busy too
                    active = time.monotonic()
                passed = time.monotonic()
                if self._wake.wait(IDLE if self.leader else RETRY_LEADER):
                    active = time.monotonic()
                    self._stopping.wait(GATHER - (active - passed))
                    self._wake.clear()
                elif time.monotonic() - active > LINGER:
                    with self._started:  # a poke from now on finds no thread, and starts one
                        if not self._wake.is_set():
                            self._thread = None
                            return
        finally:
            self.leader = False
            _close(conn)  # the session lock goes with the connection

    def _pass(self, conn: PgConn | None) -> tuple[PgConn | None, int]:
        """Lead if the lock is free, and chain everything ready: (connection to keep, chained)."""
        chained = 0
        try:
            if conn is None:
                conn, self.leader = self._connect(), False
            if not self.leader:
                self.leader = bool(conn.last_row(self._try_lead)[0])
            if self.leader:
                while True:
                    done = sequence_batch(conn, self._schema)
                    chained += done
                    if done < BATCH:
                        break
            self.error = None
            return conn, chained
        except Exception as exc:  # a lost connection, a server restart: try again later
            self.error = exc
            self.leader = False
            _close(conn)
            return None, chained


def _close(conn: Any) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):  # a broken connection: nothing more to do
            conn.close()
