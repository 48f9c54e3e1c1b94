"""Replaying a ledger's events in another order into empty projection tables (test kit).

The ledger's global order is only promised to keep each stream's own order, and a rebuild
replays in that order: every projection must end with the same rows whichever merge of
the streams it is fed. `replayed` feeds one, as the write path and `rebuild` do.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from ledger import Ledger, Record, Tx
from ledger.projection import snapshot

Tables = dict[tuple[str, str], list[tuple[Any, ...]]]


def by_stream(records: Sequence[Record]) -> dict[str, list[Record]]:
    """The records per stream, each stream's in its own (version) order."""
    streams: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.stream, r.version)):
        streams.setdefault(record.stream, []).append(record)
    return streams


def tables(ledger: Ledger) -> Tables:
    """Every row of every projection table of the ledger, sorted, per (projection, table)."""
    return {
        key: sorted(rows.elements(), key=repr)
        for key, rows in snapshot(ledger.query, ledger.projections).items()
    }


def projection_tx(ledger: Ledger) -> Tx:
    """The `Tx` the ledger's projections write through in this thread's open transaction.

    Test-only: the ledger hands it to projections alone, and this reads its session for it.
    """
    if not ledger.in_transaction:
        raise ValueError("projection_tx() needs the ledger's open write transaction")
    return ledger._s.tx


class _Undo(Exception):
    """Leaves `replayed`'s transaction rolled back, so the ledger stays empty."""


def replayed(empty: Ledger, order: Sequence[Record], *, runs: bool) -> Tables:
    """The projection tables of `empty` after applying `order` to them (then rolled back).

    `empty` holds no events. With `runs`, each run of consecutive records of one stream is
    one `apply_batch` where a projection has it (as an append, or a copy, applies them);
    else each record is one `apply` (as `rebuild` does).
    """
    result: Tables = {}
    try:
        with empty.transaction():
            tx = projection_tx(empty)
            groups = itertools.groupby(order, key=_stream) if runs else ((0, [r]) for r in order)
            for _, group in groups:
                batch = list(group)
                for projection in empty.projections:
                    _apply(projection, tx, batch)
            result = tables(empty)
            raise _Undo
    except _Undo:
        pass
    return result


def _apply(projection: Any, tx: Tx, batch: list[Record]) -> None:
    if len(batch) > 1 and hasattr(projection, "apply_batch"):
        projection.apply_batch(tx, batch)
        return
    for record in batch:
        projection.apply(tx, record)


def _stream(record: Record) -> str:
    return record.stream
