"""Copying a whole ledger into an empty one (SQLite to PostgreSQL, or back), verbatim.

`Ledger.copy_to(target)`, for moving a shop between backends:

- The source is read from one snapshot (a `reading()` block): its writers may go on; the
  copy ends at the head seen at its start, and reports that head.
- The source's whole chain is checked first, in pages (memory stays flat): a broken link
  is `ChainBroken` at its position, raised before the destination is opened.
- The destination must hold no events (`DestinationNotEmpty`). Every event is stored with
  its stream, version, type, body, time and key in the source's global order, in
  batches, inside ONE write transaction that also rebuilds the destination's projections
  from those events and verifies the result (the chain, and the projections against a
  rebuild) before it commits (`CopyUnverified` otherwise).
- Between two SQLite ledgers the destination's chain is the source's, position and hash
  for each event, so an anchor noted on the source (`POSITION:HASH`) is found on the
  destination. The backends chain differently (SQLite: one chain; PostgreSQL: a chain per
  stream plus the global chain), so a copy to the other backend links the events anew
  (a PostgreSQL destination keeps a PostgreSQL source's stream hashes, and numbers the
  events in the global order): there, note the destination's head after the copy.

Interrupted (kill -9, a lost connection, a refused check), the destination is left
without events: nothing is visible before the one commit, so running the copy again just
works. A resumable copy (a commit per batch) was the other choice; it was not taken
because each of its prefixes is a valid-looking ledger that verifies, and a shop pointed
at one by mistake would diverge from the source. The price: the destination's write lock
is held for the whole copy (nothing else should write there yet), and a re-run starts
from the first event.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

import msgspec

from ledger.errors import CopyUnverified, DestinationNotEmpty
from ledger.projection import Projection
from ledger.records import Anchor, Record, VerifyReport
from ledger.store import Ledger

Stage = Literal["checked", "copied", "verified", "committed"]


class CopyProgress(msgspec.Struct, frozen=True):
    """A milestone of a copy: the source `checked`, a batch `copied`, the destination
    `verified` (still uncommitted), then `committed`; `events` done of `total`."""

    stage: Stage
    events: int
    total: int


class CopyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What `Ledger.copy_to` did.

    `source_head` is the head of the snapshot copied (the source may have moved on since);
    `verified` is the destination's full verification, made before the commit.
    """

    source: str
    destination: str
    events: int
    source_head: tuple[int, str]
    destination_head: tuple[int, str]
    verified: VerifyReport
    seconds: float


def copy(
    source: Ledger,
    target: str | Path,
    projections: Sequence[Projection],
    *,
    batch_size: int,
    progress: Callable[[CopyProgress], None] | None,
) -> CopyReport:
    """Copy `source` into the empty ledger at `target` (see the module docstring)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    tell = progress or _quiet
    started = time.monotonic()
    source.sync()
    with source.reading():
        head = source.head()
        source._check_chain()
        tell(CopyProgress("checked", head[0], head[0]))
        with Ledger.open(target) as probe:  # refused before any projection is set up there
            refuse_events(probe)
        with Ledger.open(target, projections=projections) as destination:
            records = source.read_all(limit=head[0])
            same = type(destination)._chain is type(source)._chain
            report = _fill(records, destination, head, batch_size, tell, same=same)
            path, landed = destination.path, destination.head()
    tell(CopyProgress("committed", head[0], head[0]))
    return CopyReport(
        source=source.path,
        destination=path,
        events=report.events,
        source_head=head,
        destination_head=landed,
        verified=report,
        seconds=round(time.monotonic() - started, 3),
    )


def refuse_events(destination: Ledger) -> None:
    """`DestinationNotEmpty` if `destination` holds any event."""
    events = destination.count()
    if events:
        raise DestinationNotEmpty(destination.path, events, destination.head())


def _fill(
    records: Iterator[Record],
    destination: Ledger,
    head: tuple[int, str],
    batch_size: int,
    tell: Callable[[CopyProgress], None],
    *,
    same: bool,
) -> VerifyReport:
    """In one transaction: the records in batches, then a full verification of the result.

    `same`: the destination chains as the source does (its head must be the source's).
    """
    total = head[0]
    with destination.transaction():
        destination._keep_writers_out(destination._s.conn)
        refuse_events(destination)  # again, with every other writer kept out
        done = 0
        while batch := list(itertools.islice(records, batch_size)):
            destination._restore(batch, relink=not same)
            done += len(batch)
            tell(CopyProgress("copied", done, total))
        anchor = Anchor(*head) if total and same else None
        report = destination.verify(expect_head=anchor)
        if not report.ok or report.events != total:
            raise CopyUnverified(destination.path, report)
        tell(CopyProgress("verified", done, total))
    return report


def _quiet(_: CopyProgress) -> None:
    """The default progress callback: says nothing."""
