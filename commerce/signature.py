"""Webhook signatures of the form `t=<unix>,v1=<hex HMAC-SHA256>`: Stripe's, and others'.

Stripe signs `"<t>." + body`; another provider's `Scheme` names its header and what it
signs before the body (SumUp: `"v1:<t>:"`), and shares everything else here.

`verify` works on the raw body bytes, exactly as received, and decides before any JSON is
parsed; a body over `MAX_BODY` is refused before it is hashed. It accepts several `v1`
entries (Stripe sends two while a secret is being rolled), ignores other schemes (`v0`),
compares in constant time, and then checks the timestamp against the tolerance both ways
(a clock ahead of ours is as suspect as a replay).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from commerce.bodies import check_size
from commerce.errors import (
    SignatureExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
)

SCHEME = "v1"
MAX_HEADER = 8192
"""Longest header we parse (a real one is about 150 characters)."""


@dataclass(frozen=True)
class Scheme:
    """A `t=<unix>,v1=<hex>` signature family: its header and what the HMAC covers.

    `prefix` maps the timestamp, as the header spells it, to the bytes signed before the body.
    """

    header: str
    prefix: Callable[[str], bytes]


def _stripe_prefix(stamp: str) -> bytes:
    return f"{int(stamp)}.".encode()


STRIPE = Scheme("Stripe-Signature", _stripe_prefix)


def _bytes(body: bytes) -> bytes:
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body)
    raise TypeError(f"the body must be the raw bytes received, not {type(body).__name__}")


def _digest(body: bytes, secret: str, prefix: bytes) -> str:
    if not isinstance(secret, str) or not secret:
        raise ValueError("the webhook signing secret must be non-empty text")
    mac = hmac.new(secret.encode(), prefix, hashlib.sha256)
    mac.update(_bytes(body))
    return mac.hexdigest()


def sign(body: bytes, secret: str, timestamp: int, *, scheme: Scheme = STRIPE) -> str:
    """The header value signing `body` with `secret` at `timestamp` (Stripe's by default)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"timestamp must be whole unix seconds >= 0, got {timestamp!r}")
    digest = _digest(body, secret, scheme.prefix(str(timestamp)))
    return f"t={timestamp},{SCHEME}={digest}"


def parse_header(header: str | bytes | None) -> tuple[int, list[str]]:
    """The timestamp and the `v1` signatures of a header; other schemes are dropped."""
    stamp, signatures = _parse(header, STRIPE)
    return int(stamp), signatures


def _parse(header: str | bytes | None, scheme: Scheme) -> tuple[str, list[str]]:
    if isinstance(header, bytes):
        header = header.decode("latin-1")
    if header is None or not header.strip():
        raise SignatureMissing(f"no {scheme.header} header")
    if len(header) > MAX_HEADER:
        raise SignatureMalformed(f"header is {len(header)} characters, over {MAX_HEADER}")
    stamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not key:
            raise SignatureMalformed(f"expected key=value items, got {item.strip()[:40]!r}")
        if key == "t":
            stamps.append(value)
        elif key == SCHEME:
            signatures.append(value)
    return _timestamp(stamps), _require(signatures, header)


def _timestamp(stamps: list[str]) -> str:
    if len(stamps) != 1:
        raise SignatureMalformed(f"expected one t=<unix seconds>, found {len(stamps)}")
    text = stamps[0]
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise SignatureMalformed(f"timestamp {text[:20]!r} is not unix seconds")
    return text


def _require(signatures: list[str], header: str) -> list[str]:
    if not signatures:
        schemes = sorted({i.strip().partition("=")[0] for i in header.split(",")} - {"t"})
        found = ", ".join(schemes) or "none"
        raise SignatureMissing(f"no {SCHEME} signature in the header (schemes found: {found})")
    return signatures


def verify(
    body: bytes,
    header: str | bytes | None,
    secret: str,
    *,
    tolerance: int = 300,
    now: int,
    scheme: Scheme = STRIPE,
) -> int:
    """Check `header` signs `body` with `secret` within `tolerance` seconds of `now`.

    Returns the signed timestamp. Raises a `BadSignature` subclass: `SignatureMissing`,
    `SignatureMalformed`, `SignatureMismatch` or `SignatureExpired`; and `BodyTooLarge`
    for a body over `MAX_BODY`, before hashing it. `scheme` is Stripe's unless given.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise ValueError(f"tolerance must be whole seconds >= 0, got {tolerance!r}")
    stamp, signatures = _parse(header, scheme)
    check_size(body)
    expected = _digest(body, secret, scheme.prefix(stamp)).encode()
    matched = False
    for candidate in signatures:
        # Every candidate is compared (no early exit), each in constant time.
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureMismatch(
            f"none of {len(signatures)} {SCHEME} signature(s) matches the body and secret"
        )
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        raise SignatureExpired(timestamp, now, tolerance)
    return timestamp
