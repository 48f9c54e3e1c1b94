"""Decode SumUp webhook notices and checkout bodies into the fields commerce needs.

SumUp's webhooks say little: the legacy `CHECKOUT_STATUS_CHANGED` (unsigned) carries only
the checkout id, the signed `checkout.status.updated` adds a status. Neither carries the
amount, so a receiver confirms the checkout with the API (`decode_checkout` reads that
answer) before acting.
Statuses arrive upper- or lower-case ("FAILED", "failed") and come back lower-case.
Amounts are decimal major units (`"amount": 10.1`), read exactly with `from_major`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal, TypeVar

import msgspec

from commerce.bodies import check_body
from commerce.errors import BodyTooLarge, InvalidMoney, MalformedEvent, UnknownCurrency
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
    """A checkout as SumUp's API returns it; `amount` is in minor units.

    `transaction_id` is the payment's transaction (what a refund is made against), if any;
    `checkout_url` the hosted payment page, when the checkout has one.
    """

    checkout_id: str
    reference: str | None
    amount: int
    currency: str
    status: str
    transaction_id: str | None = None
    checkout_url: str | None = None

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


class _Transaction(msgspec.Struct, frozen=True):
    id: str
    status: str | None = None


class _Checkout(msgspec.Struct, frozen=True):
    id: str
    amount: Decimal
    currency: str
    status: str
    checkout_reference: str | None = None
    hosted_checkout_url: str | None = None
    transactions: list[_Transaction] = []
    # Some answers (the retrieve example) name the transaction at the top level instead.
    transaction_id: str | None = None

    def paid_by(self) -> str | None:
        """The successful transaction's id, if the checkout has one."""
        for t in self.transactions:
            if (t.status or "").upper() == "SUCCESSFUL":
                return t.id
        return self.transaction_id


_CHECKOUT_ID = r"^[A-Za-z0-9_-]{1,64}$"


class _Legacy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The legacy notice exactly: these two fields and nothing else."""

    event_type: Literal["CHECKOUT_STATUS_CHANGED"]
    id: Annotated[str, msgspec.Meta(pattern=_CHECKOUT_ID)]


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
_checkouts = msgspec.json.Decoder(list[_Checkout])
_legacy = msgspec.json.Decoder(_Legacy)


def is_legacy(body: bytes) -> bool:
    """Whether `body` is exactly a legacy notice (the only unsigned body a receiver takes)."""
    try:
        _decode(body, _legacy)
    except (MalformedEvent, BodyTooLarge):
        return False
    return True


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
    return _neutral(_decode(body, _checkout))


def decode_checkouts(body: bytes) -> list[SumUpCheckout]:
    """Decode a list of checkouts (what a search by `checkout_reference` answers)."""
    return [_neutral(wire) for wire in _decode(body, _checkouts)]


def _neutral(wire: _Checkout) -> SumUpCheckout:
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
        transaction_id=wire.paid_by(),
        checkout_url=wire.hosted_checkout_url,
    )
