"""`verify`: walk the hash chain, find gaps, and compare projections with a rebuild."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence

from ledger.codec import GENESIS, chain_hash
from ledger.projection import EVENT_COLUMNS, Projection, clear, compare, snapshot
from ledger.records import BrokenLink, Gap, Record, VerifyReport
from ledger.schema import GUARDS

MAX_GAPS = 100
Apply = Callable[[sqlite3.Connection, Record], None]


def run(
    conn: sqlite3.Connection, projections: Sequence[Projection], sqlite_version: str
) -> VerifyReport:
    """Check the ledger (the caller holds a write transaction, so nothing moves)."""
    conn.execute("SAVEPOINT ledger_verify")
    try:
        stored = snapshot(conn, projections)
        clear(conn, projections)
        events, head, broken, gaps = walk(conn, [projection.apply for projection in projections])
        diffs = compare(stored, snapshot(conn, projections))
    finally:
        conn.execute("ROLLBACK TO ledger_verify")
        conn.execute("RELEASE ledger_verify")
    present = {
        row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    }
    missing = [guard for guard in GUARDS if guard not in present]
    return VerifyReport(
        ok=broken is None and not gaps and not diffs and not missing,
        events=events,
        head=head,
        broken=broken,
        gaps=gaps,
        projections=diffs,
        missing_guards=missing,
        sqlite_version=sqlite_version,
    )


def walk(
    conn: sqlite3.Connection, applies: Sequence[Apply] = ()
) -> tuple[int, tuple[int, str], BrokenLink | None, list[Gap]]:
    """(events, head, first broken link, gaps) over the whole events table.

    Every event is also handed to `applies` (projections being rebuilt), in one pass.
    Each hash is recomputed from the row and its predecessor's *stored* hash, so one
    tampered row breaks one link (the first is reported) instead of every later one.
    """
    previous, expected_position, count = GENESIS, 1, 0
    versions: dict[str, int] = {}
    broken: BrokenLink | None = None
    gaps: list[Gap] = []
    rows = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY position")
    for position, stream, version, type_, data, recorded_at, key, stored in rows:
        count += 1
        if position != expected_position and len(gaps) < MAX_GAPS:
            gaps.append(Gap(None, expected_position, position))
        last = versions.get(stream, 0)
        if version != last + 1 and len(gaps) < MAX_GAPS:
            gaps.append(Gap(stream, last + 1, version))
        versions[stream] = version
        body = data.encode()
        if applies:
            record = Record(position, stream, version, type_, body, recorded_at, key, stored)
            for apply in applies:
                apply(conn, record)
        if broken is None:
            computed = chain_hash(
                previous, position, stream, version, type_, body, recorded_at, key
            )
            if computed != stored:
                broken = BrokenLink(position, computed, stored)
        previous, expected_position = stored, position + 1
    return count, (expected_position - 1, previous), broken, gaps
