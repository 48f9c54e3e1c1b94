"""Decode SumUp webhook notices and checkout bodies into the fields commerce needs.

SumUp's webhooks are unsigned and say little: the legacy `CHECKOUT_STATUS_CHANGED`
carries only the checkout id, `checkout.status.updated` adds a status. A receiver must
confirm the checkout with the API (`decode_checkout` reads that answer) before acting.
Statuses arrive upper- or lower-case ("FAILED", "failed") and come back lower-case.
Amounts are decimal major units (`"amount": 10.1`), read exactly with `from_major`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeVar

import msgspec

from commerce.bodies import check_body
from commerce.errors import InvalidMoney, MalformedEvent, UnknownCurrency
from commerce.money import Money, from_major

LEGACY_TYPE = "CHECKOUT_STATUS_CHANGED"
T = TypeVar("T")


class SumUpNotice(msgspec.Struct, frozen=True, kw_only=True):
    """A SumUp webhook: which checkout changed and, when it says so, to what status."""

    event_type: str
    event_id: str | None
    checkout_id: str | None
    status: str | None = None
    reference: str | None = None


class SumUpCheckout(msgspec.Struct, frozen=True, kw_only=True):
    """A checkout as SumUp's API returns it; `amount` is in minor units."""

    checkout_id: str
    reference: str | None
    amount: int
    currency: str
    status: str

    @property
    def money(self) -> Money:
        """The checkout's amount."""
        return Money(self.amount, self.currency)


class _Payload(msgspec.Struct, frozen=True):
    checkout_id: str | None = None
    reference: str | None = None
    status: str | None = None


class _Notice(msgspec.Struct, frozen=True):
    id: str
    event_type: str
    payload: _Payload | None = None


class _Checkout(msgspec.Struct, frozen=True):
    id: str
    amount: Decimal
    currency: str
    status: str
    checkout_reference: str | None = None


def _decode(body: bytes, decoder: msgspec.json.Decoder[T]) -> T:
    check_body(body)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise MalformedEvent(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"invalid JSON: {exc}") from exc


_notice = msgspec.json.Decoder(_Notice)
_checkout = msgspec.json.Decoder(_Checkout)


def decode_notice(body: bytes) -> SumUpNotice:
    """Decode a SumUp webhook body (legacy or current format)."""
    wire = _decode(body, _notice)
    if wire.event_type == LEGACY_TYPE:
        return SumUpNotice(event_type=wire.event_type, event_id=None, checkout_id=wire.id)
    payload = wire.payload or _Payload()
    return SumUpNotice(
        event_type=wire.event_type,
        event_id=wire.id,
        checkout_id=payload.checkout_id,
        status=payload.status.lower() if payload.status else None,
        reference=payload.reference,
    )


def decode_checkout(body: bytes) -> SumUpCheckout:
    """Decode a checkout from SumUp's API, converting the amount exactly."""
    wire = _decode(body, _checkout)
    try:
        money = from_major(wire.amount, wire.currency)
    except (InvalidMoney, UnknownCurrency) as exc:
        raise MalformedEvent(f"{exc} - at `$.amount`/`$.currency`") from exc
    return SumUpCheckout(
        checkout_id=wire.id,
        reference=wire.checkout_reference,
        amount=money.amount,
        currency=money.currency,
        status=wire.status.lower(),
    )
