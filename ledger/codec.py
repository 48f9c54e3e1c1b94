"""Event bodies (msgspec JSON), type names, timestamps, and the hash chain."""

from __future__ import annotations

from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

import msgspec

GENESIS = "0" * 64
"""The `previous hash` of the first event."""

_encoder = msgspec.json.Encoder()
encode = _encoder.encode
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
_tags: dict[type, str] = {}


def decoder_for(type_: Any) -> msgspec.json.Decoder[Any]:
    """A cached decoder for `type_` (a Struct class or a Union of tagged Structs)."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = msgspec.json.Decoder(type_)
    return decoder


def type_name(event: msgspec.Struct) -> str:
    """The `type` column for an event: its string tag, else its class name."""
    cls = type(event)
    name = _tags.get(cls)
    if name is None:
        tag = cls.__struct_config__.tag
        name = _tags[cls] = tag if isinstance(tag, str) else cls.__name__
    return name


def now_text() -> str:
    """The current UTC time as fixed-width ISO-8601 text (sorts as it reads)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def utc_text(moment: datetime) -> str:
    """`moment` as fixed-width UTC ISO-8601 text; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def chain_hash(
    previous: str,
    position: int,
    stream: str,
    version: int,
    type_: str,
    data: bytes,
    recorded_at: str,
    key: str | None,
) -> str:
    """SHA-256 hex of the previous hash and every field of the row.

    Text fields are length-prefixed so no two different rows serialise alike.
    """
    keyed = "-" if key is None else f"{len(key)}:{key}"
    head = (
        f"{previous}\n{position}\n{version}\n{len(stream)}:{stream}\n"
        f"{len(type_)}:{type_}\n{recorded_at}\n{keyed}\n"
    )
    return sha256(head.encode() + data).hexdigest()


def stream_link(
    previous: str, stream: str, version: int, type_: str, data: bytes, at: str, key: str | None
) -> str:
    """The hash of an event linked to the one before it in its stream (PostgreSQL's events).

    `chain_hash` with the stream's version in the place of the global position: the link
    holds wherever the event ends up in the global order.
    """
    return chain_hash(previous, version, stream, version, type_, data, at, key)


def global_link(previous: str, seq: int, position: int, event_hash: str) -> str:
    """The hash of the global chain's entry `seq`: the event at `position`, after `previous`."""
    return sha256(f"{previous}\n{seq}\n{position}\n{event_hash}".encode()).hexdigest()
