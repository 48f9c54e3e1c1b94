"""Checking PostgreSQL's two chains: each stream's links, and the global chain over them.

Every event is linked to the one before it in its stream (`codec.stream_link`), and every
entry of the global chain to the entry before it and to its event's stored hash
(`codec.global_link`). One walk in global order checks both: each entry's link, its
event's stream link (the predecessor's stored hash comes with the row), and that the
stream's previous version was chained before it. Events committed but not chained yet
(the sequencer runs after commit) come last, in the order the sequencer will chain them,
with their stream links checked; they are counted as `pending`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ledger.codec import GENESIS, global_link, stream_link
from ledger.errors import ChainBroken
from ledger.projection import Projection
from ledger.records import BrokenLink, Gap, Record
from ledger.tx import Conn, Tx
from ledger.verify import MAX_GAPS, WALK_PAGE, Row, Walked

_COLUMNS = (
    "e.position, e.stream, e.version, e.type, e.data, e.recorded_at, e.idempotency_key, e.hash"
)
_PREVIOUS = "events p ON p.stream = e.stream AND p.version = e.version - 1"
_CHAINED = (
    f"SELECT c.seq, c.position, c.hash, c.xid::text, {_COLUMNS}, p.hash, pc.seq FROM chain c"
    f" LEFT JOIN events e ON e.position = c.position LEFT JOIN {_PREVIOUS}"
    " LEFT JOIN chain pc ON pc.position = p.position"
    " WHERE c.seq > ? ORDER BY c.seq LIMIT ?"
)
_CURSOR = "SELECT xid::text, position FROM chain ORDER BY seq DESC LIMIT 1"
_CURSOR_AT = "SELECT xid::text, position FROM chain WHERE seq = ?"
_UNCHAINED = (
    f"SELECT e.xid::text, {_COLUMNS}, p.hash FROM events e LEFT JOIN {_PREVIOUS}"
    " WHERE (e.xid, e.position) > (?::xid8, ?::bigint) ORDER BY e.xid, e.position LIMIT ?"
)
_PENDING = "SELECT count(*) FROM events WHERE (xid, position) > (?::xid8, ?::bigint)"
_HASH_AT = "SELECT hash FROM chain WHERE seq = ?"


def check_stream_link(previous: str | None, row: Row) -> None:
    """Raise `ChainBroken` unless `row`'s stored hash follows from it and its stream predecessor.

    `previous` is the stored hash of the stream's previous version (None: there is none).
    """
    reason = stream_fault(previous, row)
    if reason is not None:
        raise ChainBroken(row[0], reason)


def stream_fault(previous: str | None, row: Row) -> str | None:
    """Why `row` does not link to its stream predecessor's hash `previous` (None: it does)."""
    _, stream, version, type_, data, recorded_at, key, stored = row
    if previous is None:
        if version != 1:
            return f"version {version - 1} of {stream!r} before it is missing"
        previous = GENESIS
    if stream_link(previous, stream, version, type_, data.encode(), recorded_at, key) != stored:
        return "its content does not give its stored hash"
    return None


class StreamChains:
    """The `verify.Chain` of a PostgreSQL ledger (see the module docstring)."""

    @staticmethod
    def walk(
        conn: Conn,
        after: int = 0,
        previous: str = GENESIS,
        rebuild: tuple[Tx, Sequence[Projection]] | None = None,
    ) -> Walked:
        """(events, head, first fault, gaps) over the global chain after `after`, then pending.

        `previous` is the chain's stored hash at `after`. With `rebuild`, every event is
        applied to those projections through that transaction, in the order walked.
        """
        expected, count = after + 1, 0
        broken: BrokenLink | None = None
        gaps: list[Gap] = []
        applies = [p.apply for p in rebuild[1]] if rebuild else []
        head = (after, previous)
        cursor = conn.execute(_CURSOR_AT, (after,)).fetchone() or ("0", 0)
        for seq, position, stored, xid, *event in _pages(conn, _CHAINED, after):
            cursor = (xid, position)
            count += 1
            if seq != expected and len(gaps) < MAX_GAPS:
                gaps.append(Gap(None, expected, seq))
            *columns, predecessor, predecessor_seq = event
            if columns[0] is None:  # the entry's event is gone
                broken = broken or BrokenLink(position, "an event", "none")
            else:
                row: Row = tuple(columns)
                computed = global_link(previous, seq, position, row[7])
                if broken is None and computed != stored:
                    broken = BrokenLink(position, computed, stored)
                broken = broken or _stream_fault(predecessor, row, gaps)
                if (
                    broken is None
                    and predecessor is not None
                    and (predecessor_seq is None or predecessor_seq > seq)
                ):
                    broken = BrokenLink(position, "its stream's previous version first", str(seq))
                _apply(applies, rebuild, row)
            previous, expected = stored, seq + 1
            head = (seq, stored)
        # after the last entry walked, not the chain's tip now: in a write transaction (a
        # rebuild) each statement sees the latest commit, and the sequencer may have run
        for _, *columns, predecessor in _pages(conn, _UNCHAINED, tuple(cursor), keyed=2):
            count += 1
            row = tuple(columns)
            broken = broken or _stream_fault(predecessor, row, gaps)
            _apply(applies, rebuild, row)
        return count, head, broken, gaps

    @staticmethod
    def hash_at(conn: Conn, position: int) -> str | None:
        """The global chain's stored hash at entry `position` (None: no such entry)."""
        row = conn.execute(_HASH_AT, (position,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def pending(conn: Conn) -> int:
        """The committed events the sequencer has not chained yet."""
        cursor = conn.execute(_CURSOR).fetchone() or ("0", 0)
        return int(conn.execute(_PENDING, tuple(cursor)).fetchone()[0])


def _stream_fault(predecessor: str | None, row: Row, gaps: list[Gap]) -> BrokenLink | None:
    reason = stream_fault(predecessor, row)
    if reason is None:
        return None
    if predecessor is None and row[2] != 1 and len(gaps) < MAX_GAPS:
        gaps.append(Gap(row[1], row[2] - 1, row[2]))
    return BrokenLink(row[0], reason, row[7])


def _apply(applies: list[Any], rebuild: tuple[Tx, Sequence[Projection]] | None, row: Row) -> None:
    if rebuild:
        position, stream, version, type_, data, recorded_at, key, stored = row
        record = Record(position, stream, version, type_, data.encode(), recorded_at, key, stored)
        for apply in applies:
            apply(rebuild[0], record)


def _pages(conn: Conn, sql: str, after: Any, keyed: int = 1) -> Iterator[tuple[Any, ...]]:
    """The rows of `sql` after the key `after` (`keyed` leading columns), a page at a time."""
    key = after if isinstance(after, tuple) else (after,)
    while True:
        page = conn.execute(sql, (*key, WALK_PAGE)).fetchall()
        yield from page
        if len(page) < WALK_PAGE:
            return
        key = tuple(page[-1][:keyed]) if keyed > 1 else (page[-1][0],)
