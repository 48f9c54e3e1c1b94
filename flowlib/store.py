"""What the engine needs from storage (`Store`), and `MemoryStore`, which ships beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import msgspec

from flowlib.log import FlowSummary, advance

FLOW_PREFIX = "flow:"
CLAIM_BATCH = 16
"""Due flows claimed at once: a lease must outlast firing a batch, and a small batch leaves
the rest to the other workers."""


class FlowRow(Protocol):
    """The attributes the engine reads from a store's flow index rows."""

    @property
    def flow_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def due(self) -> datetime | None: ...


class Store(Protocol):
    """Append-only streams, a flow index, and transactions that group both.

    `transaction()` is re-entrant: an inner block joins the outer one, and only the
    outermost commits (or rolls everything back on an exception). What it yields is handed
    to handlers as `StepContext.tx`, so a handler's own writes share the step's transaction.
    `append` raises if `expected_version` is not the stream's current length. The flow index
    (`flows`) is kept from the `status`/`awaits`/`due` fields of the events in `flow:` streams.
    """

    def transaction(self) -> Any: ...

    def read(self, stream: str, type: Any) -> list[Any]: ...

    def version(self, stream: str) -> int: ...

    def append(
        self, stream: str, items: Sequence[msgspec.Struct], *, expected_version: int
    ) -> int: ...

    def flows(
        self,
        *,
        status: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> Sequence[FlowRow]: ...


class ClaimingStore(Store, Protocol):
    """A `Store` that leases due flows, so engines on one store share their timers.

    Optional (`MemoryStore` has no need): the engine claims through it when the store has
    `claim_due`, and otherwise reads `flows(due_before=...)`. `claim_due` leases to `owner`
    for `lease` seconds, in a transaction of its own, up to `limit` flows due at `now`
    that no unexpired lease holds; `release_claims` drops `owner`'s leases on `flow_ids`.
    """

    def claim_due(
        self, now: datetime, *, limit: int | None, lease: float, owner: str
    ) -> Sequence[FlowRow]: ...

    def release_claims(self, flow_ids: Sequence[str], *, owner: str) -> int: ...


@contextmanager
def due_flows(
    store: Store, now: datetime, *, limit: int | None, lease: timedelta, owner: str
) -> Iterator[Iterator[FlowRow]]:
    """The flows due at `now`: claimed `CLAIM_BATCH` at a time if the store can, else read.

    Claimed flows stay leased until the block ends, then are released all at once (the
    ones that failed to fire too): one statement per round, and no flow comes back to the
    same round however its fire left it. A claimer that dies leaves its leases to expire.
    """
    if not hasattr(store, "claim_due"):
        yield iter(store.flows(due_before=now, limit=limit))
        return
    claiming = cast(ClaimingStore, store)
    claimed: list[str] = []
    try:
        yield _claims(claiming, now, limit, lease.total_seconds(), owner, claimed)
    except BaseException:
        with suppress(Exception):  # what failed may be the store: the leases expire then
            claiming.release_claims(claimed, owner=owner)
        raise
    claiming.release_claims(claimed, owner=owner)


def _claims(
    store: ClaimingStore,
    now: datetime,
    limit: int | None,
    lease: float,
    owner: str,
    claimed: list[str],
) -> Iterator[FlowRow]:
    """Claim batches until none is due unclaimed (or `limit` is reached), noting each id."""
    while limit is None or len(claimed) < limit:
        size = CLAIM_BATCH if limit is None else min(CLAIM_BATCH, limit - len(claimed))
        rows = store.claim_due(now, limit=size, lease=lease, owner=owner)
        claimed.extend(row.flow_id for row in rows)
        yield from rows
        if len(rows) < size:
            return


class VersionConflict(Exception):
    """MemoryStore's optimistic-concurrency failure."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        self.stream, self.expected, self.actual = stream, expected, actual
        super().__init__(f"stream {stream!r} is at version {actual}, expected {expected}")


class MemoryStore:
    """A `Store` in process memory, for tests and for engines that need no durability."""

    def __init__(self) -> None:
        self._streams: dict[str, list[msgspec.Struct]] = {}
        self._index: dict[str, FlowSummary] = {}
        self._depth = 0
        self._undo: dict[str, int] = {}
        self._hooks: list[tuple[Callable[[], None], Callable[[], None] | None]] = []

    @contextmanager
    def transaction(self) -> Iterator[MemoryStore]:
        """Group appends; roll them all back if the outermost block raises."""
        self._depth += 1
        committed = False
        try:
            yield self
            committed = True
        except BaseException:
            if self._depth == 1:
                self._rollback()
            raise
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._undo.clear()
                hooks, self._hooks = self._hooks, []
                for on_commit, on_rollback in hooks:
                    hook = on_commit if committed else on_rollback
                    if hook is not None:
                        hook()

    def after_commit(
        self, fn: Callable[[], None], on_rollback: Callable[[], None] | None = None
    ) -> None:
        """Run `fn` when the outermost transaction ends well (at once outside one).

        If it rolls back, `on_rollback` runs instead (an inner block's exception that the
        outer one catches rolls nothing back here, so it changes nothing).
        """
        if not self._depth:
            fn()
            return
        self._hooks.append((fn, on_rollback))

    def read(self, stream: str, type: Any = None) -> list[Any]:
        """The stream's items, oldest first (they are kept as the objects appended)."""
        return list(self._streams.get(stream, ()))

    def version(self, stream: str) -> int:
        """The number of items in the stream."""
        return len(self._streams.get(stream, ()))

    def append(self, stream: str, items: Sequence[msgspec.Struct], *, expected_version: int) -> int:
        """Append `items` if the stream is at `expected_version`; returns the new version."""
        current = self._streams.get(stream, [])
        if len(current) != expected_version:
            raise VersionConflict(stream, expected_version, len(current))
        if not current:
            self._streams[stream] = current  # created only once the append is accepted
        if self._depth:
            self._undo.setdefault(stream, len(current))
        current.extend(items)
        if stream.startswith(FLOW_PREFIX):
            flow_id = stream[len(FLOW_PREFIX) :]
            summary = self._index.get(flow_id)
            for item in items:
                summary = advance(summary, flow_id, item)  # type: ignore[arg-type]
            if summary is not None:
                self._index[flow_id] = summary
        return len(current)

    def flows(
        self,
        *,
        status: str | None = None,
        due_before: datetime | None = None,
        limit: int | None = None,
    ) -> list[FlowSummary]:
        """Index rows matching `status` and/or due at or before `due_before`, by due time."""
        rows = [
            row
            for row in self._index.values()
            if (status is None or row.status == status)
            and (due_before is None or (row.due is not None and row.due <= due_before))
        ]
        if due_before is not None:
            rows.sort(key=lambda row: row.due or due_before)
        return rows[:limit] if limit is not None else rows

    def streams(self) -> list[str]:
        """Every stream name, in creation order."""
        return list(self._streams)

    def _reindex(self, stream: str) -> None:
        if stream.startswith(FLOW_PREFIX):
            flow_id, summary = stream[len(FLOW_PREFIX) :], None
            for item in self._streams[stream]:
                summary = advance(summary, flow_id, item)  # type: ignore[arg-type]
            if summary is not None:
                self._index[flow_id] = summary

    def _rollback(self) -> None:
        for stream, length in self._undo.items():
            del self._streams[stream][length:]
            if not self._streams[stream]:
                del self._streams[stream]
                if stream.startswith(FLOW_PREFIX):
                    self._index.pop(stream[len(FLOW_PREFIX) :], None)
            else:
                self._reindex(stream)
        self._undo.clear()
