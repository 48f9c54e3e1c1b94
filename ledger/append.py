"""The append path's pure parts: checking and encoding a batch, and idempotent repeats.

A multi-event append maps to one idempotency key like this: the first event stores the
key itself, the n-th event (n >= 2) stores `key + "\\x1f" + str(n)`. Keys may not contain
control characters, so these continuation keys belong to exactly one batch, and the
batch's stored events are found by one range scan of the unique index: a repeat compares
stream, count, types and bodies, and returns the original positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from ledger.codec import encode, type_name
from ledger.errors import IdempotencyConflict, InvalidAppend
from ledger.records import Appended
from ledger.tx import Conn

SEPARATOR = "\x1f"
Batch = list[tuple[str, bytes]]

_KEYED = (
    "SELECT position, stream, version, type, data FROM events "
    "WHERE idempotency_key = ? OR (idempotency_key > ? AND idempotency_key < ?) "
    "ORDER BY position"
)


def row_key(key: str | None, index: int) -> str | None:
    """The stored idempotency key of the `index`-th (0-based) event of a keyed batch."""
    if key is None or index == 0:
        return key
    return f"{key}{SEPARATOR}{index + 1}"


def prepare(
    stream: str, events: Sequence[Any], expected_version: int | None, key: str | None
) -> Batch:
    """Check an append's arguments and encode its events as (type, JSON body) pairs."""
    if not isinstance(stream, str) or not stream:
        raise InvalidAppend(str(stream), "the stream name must be a non-empty string")
    if expected_version is not None and (
        not isinstance(expected_version, int) or expected_version < 0
    ):
        raise InvalidAppend(stream, f"expected_version {expected_version!r} is not an int >= 0")
    if key is not None:
        if not isinstance(key, str) or not key or not key.isprintable():
            raise InvalidAppend(stream, f"idempotency key {key!r} must be printable, non-empty")
        if not events:
            raise InvalidAppend(stream, "an idempotency key needs at least one event")
    if isinstance(events, msgspec.Struct) or not isinstance(events, Sequence):
        raise InvalidAppend(stream, "events must be a sequence of msgspec Structs")
    batch = []
    for event in events:
        if not isinstance(event, msgspec.Struct):
            raise InvalidAppend(stream, f"{type(event).__name__} is not a msgspec Struct")
        try:
            batch.append((type_name(event), encode(event)))
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidAppend(stream, f"cannot encode {type(event).__name__}: {exc}") from exc
    return batch


def find_repeat(
    conn: Conn,
    stream: str,
    batch: Batch,
    expected_version: int | None,
    key: str,
) -> Appended | None:
    """The earlier append made under `key`, if any; a different one raises a conflict."""
    rows = conn.execute(_KEYED, (key, key + SEPARATOR, key + chr(ord(SEPARATOR) + 1))).fetchall()
    if not rows:
        return None
    first_position, first_stream, first_version = rows[0][0], rows[0][1], rows[0][2]
    same = (
        len(rows) == len(batch)
        and all(
            row[1] == stream and row[3] == type_ and row[4] == data.decode()
            for row, (type_, data) in zip(rows, batch, strict=True)
        )
        and expected_version in (None, first_version - 1)
    )
    if not same:
        raise IdempotencyConflict(key, first_stream, first_position)
    return Appended(stream, first_position, len(rows), rows[-1][2], repeated=True)
