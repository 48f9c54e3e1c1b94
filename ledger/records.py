"""The values the ledger hands out: stored records, append results, flow rows, verify reports."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Record(msgspec.Struct, frozen=True, gc=False):
    """One stored event, exactly as recorded.

    `data` is the msgspec JSON body; `recorded_at` is the UTC ISO-8601 text that the hash
    covers; `idempotency_key` is the append's key on its first event (see `Ledger.append`).
    """

    position: int
    stream: str
    version: int
    type: str
    data: bytes
    recorded_at: str
    idempotency_key: str | None
    hash: str


class Appended(msgspec.Struct, frozen=True):
    """What one append wrote (or, for a repeated idempotency key, had written before)."""

    stream: str
    first_position: int
    count: int
    version: int
    repeated: bool = False

    @property
    def positions(self) -> range:
        """The global positions of the appended events."""
        return range(self.first_position, self.first_position + self.count)


class FlowRow(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the flows projection (the fields of flowlib's `FlowSummary`)."""

    flow_id: str
    name: str
    version: int
    status: str
    awaits: list[str] = []
    due: datetime | None = None


class BrokenLink(msgspec.Struct, frozen=True):
    """The first event whose stored hash is not the one its content and predecessor give."""

    position: int
    expected: str
    found: str


class Gap(msgspec.Struct, frozen=True):
    """A missing global position (`stream` is None) or a missing version within a stream."""

    stream: str | None
    expected: int
    found: int


class ProjectionDiff(msgspec.Struct, frozen=True):
    """A projection table whose rows differ from what a rebuild from the events gives."""

    projection: str
    table: str
    missing: int
    unexpected: int


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of `Ledger.verify()`; `ok` only if nothing below is wrong."""

    ok: bool
    events: int
    head: tuple[int, str]
    broken: BrokenLink | None = None
    gaps: list[Gap] = []
    projections: list[ProjectionDiff] = []
    missing_guards: list[str] = []
    sqlite_version: str = ""
