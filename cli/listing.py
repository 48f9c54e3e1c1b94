"""Listings that grow: `--limit` and `--since` for `order list`, `flows list`, `ledger tail`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from cli.runtime import parse_instant
from ledger import Ledger

Limit = Annotated[
    int | None,
    typer.Option(
        "--limit", min=0, metavar="N", help="Only the newest N (still printed oldest first)."
    ),
]
Since = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="INSTANT",
        help="Only from this ISO-8601 instant on, e.g. 2025-01-31 or 2025-01-31T12:00:00Z.",
    ),
]


def since(text: str | None) -> datetime | None:
    """The `--since` instant (a usage error if it is not ISO-8601)."""
    return parse_instant(text, "--since")


def position_before(ledger: Ledger, instant: datetime) -> int:
    """The position after which every event was recorded at or after `instant`.

    A binary search over positions (about 20 reads at a million events): positions are in
    commit order and each commit records its clock, so times rise with them.
    """
    low, high = 0, ledger.head()[0]
    while low < high:
        middle = (low + high) // 2
        record = next(ledger.read_all(after=middle, limit=1), None)
        if record is None or datetime.fromisoformat(record.recorded_at) >= instant:
            high = middle
        else:
            low = middle + 1
    return low
