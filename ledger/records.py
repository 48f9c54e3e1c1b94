"""The values the ledger hands out: stored records, append results, flow rows, verify reports."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Record(msgspec.Struct, frozen=True, gc=False):
    """One stored event, exactly as recorded.

    `data` is the msgspec JSON body; `recorded_at` is the UTC ISO-8601 text that the hash
    covers; `idempotency_key` is the append's key on its first event (see `Ledger.append`).
    `position` is the event's own number: on SQLite its place in the one hash chain, on
    PostgreSQL a unique id increasing along its stream (the global order is the chain's).
    """

    position: int
    stream: str
    version: int
    type: str
    data: bytes
    recorded_at: str
    idempotency_key: str | None
    hash: str
    seq: int = 0
    """Its entry in PostgreSQL's global chain, when read by `read_all` (0 otherwise; on
    SQLite `position` is its place in the one chain)."""

    @property
    def cursor(self) -> int:
        """Where `read_all(after=...)` resumes after this record."""
        return self.seq or self.position


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


class Anchor(msgspec.Struct, frozen=True):
    """A position and the hash the event there must have (e.g. a head noted elsewhere)."""

    position: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """`POSITION:HASH` (as `orderflow ledger verify` prints the head); `ValueError` if not."""
        position, _, hash_ = text.partition(":")
        if not position.isdigit() or int(position) < 1 or len(hash_) != 64:
            raise ValueError(f"{text!r} is not POSITION:HASH (a position >= 1, a 64-hex hash)")
        if any(c not in "0123456789abcdef" for c in hash_.lower()):
            raise ValueError(f"{text!r} is not POSITION:HASH (the hash is not hexadecimal)")
        return cls(int(position), hash_.lower())

    def __str__(self) -> str:
        return f"{self.position}:{self.hash}"


class Mark(msgspec.Struct, frozen=True):
    """A recorded verification: the chain was intact up to `position` (with `hash`) at `at`."""

    position: int
    hash: str
    at: str


class VerifyReport(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of `Ledger.verify()` or `scrub()`; `ok` only if nothing below is wrong.

    `full` is False for a scrub, which walked only the chain after position `since`.
    `last_full` is the last recorded full verification (before this one). With an
    `anchor`, `anchor_found` is the hash stored at its position (None: no such event).
    """

    ok: bool
    events: int
    head: tuple[int, str]
    broken: BrokenLink | None = None
    gaps: list[Gap] = []
    projections: list[ProjectionDiff] = []
    missing_guards: list[str] = []
    sqlite_version: str = ""
    full: bool = True
    since: int = 0
    last_full: Mark | None = None
    anchor: Anchor | None = None
    anchor_found: str | None = None
    pending: int = 0
    """Events committed but not yet given a place in the global chain (PostgreSQL's
    sequencer runs after commit): their stream links were checked, and they count in
    `events`."""

    def checked_against(self, anchor: Anchor | None, found: str | None) -> VerifyReport:
        """This report with `anchor` checked (`found`: the hash stored at its position)."""
        if anchor is None:
            return self
        ok = self.ok and found == anchor.hash
        return msgspec.structs.replace(self, ok=ok, anchor=anchor, anchor_found=found)
