"""Waiting for new events on PostgreSQL: LISTEN for the sequencer's NOTIFY.

Only the sequencer notifies, once per batch it chains (`ledger.sequencer.CHANNEL`), so
step transactions stay free of NOTIFY (which would serialise their commits). A listener
holds one connection of its own, opened on first use. Notifications are lost while a
connection is down, so a wait also looks at the head at least once a second.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from ledger.postgres import PgConn
from ledger.sequencer import CHANNEL

LOOK_EVERY = 1.0  # seconds: the longest a wait goes without looking at the head itself


class Listener:
    """Waits on one schema's chain notifications; safe from many threads (one waits at once)."""

    def __init__(self, connect: Callable[[], PgConn]) -> None:
        self._connect = connect
        self._conn: PgConn | None = None
        self._lock = threading.Lock()

    def wait(self, arrived: Callable[[], bool], timeout: float) -> bool:
        """Wait until `arrived()` (checked at the start, on each notification for this
        schema, and at least every `LOOK_EVERY`), at most `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            conn = self._listening()
            while True:
                if arrived():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    for _ in conn.raw.notifies(timeout=min(left, LOOK_EVERY), stop_after=1):
                        pass  # any schema's: `arrived` says whether it was this one's
                except Exception:  # a lost connection: reconnect on the next wait
                    self.close()
                    time.sleep(min(max(left, 0), LOOK_EVERY))
                    conn = self._listening()

    def _listening(self) -> PgConn:
        if self._conn is None:
            conn = self._connect()
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
        return self._conn

    def close(self) -> None:
        """Close the listening connection (a later wait opens another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
