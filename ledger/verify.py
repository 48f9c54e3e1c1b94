"""Checking the hash chain: one event as it is read, the tip, a scrub, and a full verify.

A database notices a damaged page but not a changed byte inside a row; the chain does. Each
event's hash is recomputed from its row and its predecessor's *stored* hash, so a changed
row breaks its own link (and, if its hash was rewritten too, its successor's).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from ledger.codec import GENESIS, chain_hash, now_text
from ledger.errors import ChainBroken
from ledger.projection import EVENT_COLUMNS, Projection, compare, snapshot
from ledger.records import Anchor, BrokenLink, Gap, Mark, Record, VerifyReport
from ledger.tx import Conn, Tx

MAX_GAPS = 100
WALK_PAGE = 5000  # events per read of a walk: memory stays flat however long the ledger
_PREDECESSOR = "SELECT hash FROM events WHERE position = ?"
_PAGE = f"SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
_LAST_TWO = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY position DESC LIMIT 2"
_MARK = "SELECT position, hash, verified_at FROM verified WHERE scope = ?"
_RECORD = (
    "INSERT INTO verified (scope, position, hash, verified_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (scope) DO UPDATE SET position = excluded.position, hash = excluded.hash, "
    "verified_at = excluded.verified_at WHERE excluded.position >= verified.position"
)
Row = tuple[int, str, int, str, str, str, str | None, str]  # in EVENT_COLUMNS order
Walked = tuple[int, tuple[int, str], BrokenLink | None, list[Gap]]  # what `walk` returns


class Chain(Protocol):
    """How a backend's events are chained: a walk over them in chain order, and anchors."""

    def walk(
        self,
        conn: Conn,
        after: int = 0,
        previous: str = GENESIS,
        rebuild: tuple[Tx, Sequence[Projection]] | None = None,
    ) -> Walked: ...

    def hash_at(self, conn: Conn, position: int) -> str | None: ...

    def pending(self, conn: Conn) -> int: ...


def check_link(previous: str | None, row: Row) -> None:
    """Raise `ChainBroken` unless `row`'s stored hash follows from it and `previous`.

    `previous` is the predecessor's stored hash (None: there is no predecessor row).
    """
    position, stream, version, type_, data, recorded_at, key, stored = row
    if previous is None:
        if position != 1:
            raise ChainBroken(position, f"event {position - 1} before it is missing")
        previous = GENESIS
    computed = chain_hash(
        previous, position, stream, version, type_, data.encode(), recorded_at, key
    )
    if computed != stored:
        raise ChainBroken(position, "its content does not give its stored hash")


def predecessor(conn: Conn, position: int) -> str | None:
    """The stored hash of the event before `position` (GENESIS before the first)."""
    if position == 1:
        return GENESIS
    row = conn.execute(_PREDECESSOR, (position - 1,)).fetchone()
    return None if row is None else str(row[0])


def checked_tip(conn: Conn) -> tuple[int, str]:
    """The last position and hash, after checking that event's link (`ChainBroken`)."""
    rows = conn.execute(_LAST_TWO).fetchall()
    if not rows:
        return (0, GENESIS)
    last = rows[0]
    before = rows[1][7] if len(rows) > 1 and rows[1][0] == last[0] - 1 else None
    check_link(GENESIS if last[0] == 1 else before, last)
    return (last[0], last[7])


def _pages(conn: Conn, after: int) -> Iterator[tuple[Any, ...]]:
    """The events after `after` in position order, read a page at a time.

    A driver may fetch a whole result before the first row (psycopg does), so one query
    for the whole ledger would hold every event in memory at once. The caller reads
    inside one snapshot (`reading()` or a transaction), so the pages do not tear.
    """
    while True:
        page = conn.execute(_PAGE, (after, WALK_PAGE)).fetchall()
        yield from page
        if len(page) < WALK_PAGE:
            return
        after = page[-1][0]


def walk(
    conn: Conn,
    after: int = 0,
    previous: str = GENESIS,
    rebuild: tuple[Tx, Sequence[Projection]] | None = None,
) -> Walked:
    """(events, head, first broken link, gaps) over the events after position `after`.

    `previous` is the stored hash at `after`. With `rebuild`, every event is also applied
    to those projections through that (other) transaction, in the same pass. Stream versions
    are checked for gaps only in a walk from the start.
    """
    expected_position, count = after + 1, 0
    versions: dict[str, int] | None = {} if after == 0 else None
    broken: BrokenLink | None = None
    gaps: list[Gap] = []
    applies = [p.apply for p in rebuild[1]] if rebuild else []
    for position, stream, version, type_, data, recorded_at, key, stored in _pages(conn, after):
        count += 1
        if position != expected_position and len(gaps) < MAX_GAPS:
            gaps.append(Gap(None, expected_position, position))
        if versions is not None:
            last = versions.get(stream, 0)
            if version != last + 1 and len(gaps) < MAX_GAPS:
                gaps.append(Gap(stream, last + 1, version))
            versions[stream] = version
        body = data.encode()
        if rebuild:
            record = Record(position, stream, version, type_, body, recorded_at, key, stored)
            for apply in applies:
                apply(rebuild[0], record)
        if broken is None:
            computed = chain_hash(
                previous, position, stream, version, type_, body, recorded_at, key
            )
            if computed != stored:
                broken = BrokenLink(position, computed, stored)
        previous, expected_position = stored, position + 1
    return count, (expected_position - 1, previous), broken, gaps


def full(
    conn: Conn,
    projections: Sequence[Projection],
    scratch: AbstractContextManager[Tx],
    missing_guards: list[str],
    engine_version: str,
    anchor: Anchor | None = None,
    chain: Chain | None = None,
) -> VerifyReport:
    """The whole chain, and every projection against a rebuild into `scratch`'s tables.

    The caller holds a read snapshot; the backend's scratch tables are seen by no one
    else (SQLite: an in-memory database; PostgreSQL: temporary tables), so verifying never
    takes the write lock and never waits for (or blocks) writers.
    """
    stored = snapshot(conn.execute, projections)  # first: a scratch may shadow the stored tables
    with scratch as tx:
        for projection in projections:
            projection.create(tx)
        walked = (chain or GLOBAL).walk(conn, rebuild=(tx, projections))
        diffs = compare(stored, snapshot(tx.query, projections))
    return _report(
        conn,
        walked,
        engine_version,
        anchor,
        chain or GLOBAL,
        projections=diffs,
        missing_guards=missing_guards,
    )


def since_last(
    conn: Conn, engine_version: str, anchor: Anchor | None = None, chain: Chain | None = None
) -> VerifyReport:
    """The chain from the last verified position to the head (a scrub)."""
    chain = chain or GLOBAL
    start = mark(conn, "chain")
    after, previous = (0, GENESIS) if start is None else (start.position, start.hash)
    events, head, broken, gaps = chain.walk(conn, after=after, previous=previous)
    if start is not None:
        found = chain.hash_at(conn, start.position)
        if found != start.hash:  # changed, or gone, since it was verified
            broken = BrokenLink(start.position, start.hash, found or "")
    walked = (events, head, broken, gaps)
    return _report(conn, walked, engine_version, anchor, chain, full=False, since=after)


def _report(
    conn: Conn,
    walked: Walked,
    engine_version: str,
    anchor: Anchor | None,
    chain: Chain,
    **fields: Any,
) -> VerifyReport:
    """A report on what `walk` found (and `fields`), ok only if nothing is wrong."""
    events, head, broken, gaps = walked
    wrong = broken is not None or gaps or fields.get("projections") or fields.get("missing_guards")
    report = VerifyReport(
        ok=not wrong,
        events=events,
        head=head,
        broken=broken,
        gaps=gaps,
        sqlite_version=engine_version,
        last_full=mark(conn, "full"),
        pending=chain.pending(conn),
        **fields,
    )
    found = None if anchor is None else chain.hash_at(conn, anchor.position)
    return report.checked_against(anchor, found)


class _GlobalChain:
    """SQLite's chain: every event linked to the one before it in position order."""

    walk = staticmethod(walk)

    @staticmethod
    def hash_at(conn: Conn, position: int) -> str | None:
        """The stored hash at `position` (None: no such event)."""
        row = conn.execute(_PREDECESSOR, (position,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def pending(conn: Conn) -> int:
        """Events not yet in the chain: none, since each is chained as it is written."""
        return 0


GLOBAL: Chain = _GlobalChain()


def mark(conn: Conn, scope: str) -> Mark | None:
    """The recorded verification of `scope` ("full" or "chain"), if any."""
    try:
        row = conn.execute(_MARK, (scope,)).fetchone()
    except sqlite3.OperationalError:  # a ledger of schema 1, opened read-only
        return None
    return None if row is None else Mark(row[0], row[1], row[2])


def record(conn: Conn, report: VerifyReport) -> None:
    """Remember an ok report's head: as the scrub's start, and (if full) the last full check."""
    position, hash_ = report.head
    at = now_text()
    conn.execute(_RECORD, ("chain", position, hash_, at))
    if report.full:
        conn.execute(_RECORD, ("full", position, hash_, at))
