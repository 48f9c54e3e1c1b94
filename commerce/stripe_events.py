"""Decode Stripe webhook bodies into the few fields commerce acts on.

`decode_event(body)` gives an `IntentEvent` (any `payment_intent.*`), a `ChargeRefunded`
(`charge.refunded`), a `ChargeSucceeded` (`charge.succeeded`), a `CheckoutCompleted`
(`checkout.session.completed` and the `async_payment_succeeded`/`_failed` that follow a
delayed payment method), or an `IgnoredEvent` (any other type, still with id, type
and livemode). Bodies over `MAX_BODY` bytes are refused before parsing; any other problem
is a `MalformedEvent` naming the JSON path (`$.data.object.amount`).

Ids are decoded as the provider sent them, whatever their shape: an authentic event whose
`payment_intent` is not a payment intent id (pay-rails' fixture says "pm_1234", a payment
method id) is well formed, and the settler records it as an orphan rather than answering
400 (which Stripe would retry for days). `payment_intent: null` (a charge made without an
intent, a Checkout session in setup mode) decodes as `intent_id=None`. Currencies come
back upper-case and must be known ISO 4217 codes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypedDict

import msgspec

from commerce.bodies import check_body
from commerce.errors import MalformedEvent, UnknownCurrency
from commerce.limits import MAX_BODY as MAX_BODY  # re-exported: where it used to live
from commerce.money import MAX_AMOUNT, Money, normalise_currency

_Id = Annotated[str, msgspec.Meta(min_length=1)]
_Amount = Annotated[int, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
_Currency = Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{3}$")]


class StripeEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """What every Stripe event carries; the base of the decoded forms."""

    event_id: str
    event_type: str
    livemode: bool
    created: int
    api_version: str | None = None


class IntentEvent(StripeEvent, frozen=True):
    """A `payment_intent.*` event: the intent's amount, status and order reference."""

    intent_id: str
    amount: int
    amount_received: int
    currency: str
    status: str
    order_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def money(self) -> Money:
        """The intent's amount."""
        return Money(self.amount, self.currency)


class ChargeRefunded(StripeEvent, frozen=True):
    """A `charge.refunded` event; `amount_refunded` is cumulative over the charge."""

    charge_id: str
    intent_id: str | None
    amount: int
    amount_refunded: int
    refunded: bool
    currency: str
    order_id: str | None = None

    @property
    def fully_refunded(self) -> bool:
        """Whether the whole charge has been given back (not a partial refund)."""
        return self.refunded or self.amount_refunded >= self.amount


class ChargeSucceeded(StripeEvent, frozen=True):
    """A `charge.succeeded` event: `amount_captured` of the charge's intent was paid."""

    charge_id: str
    intent_id: str | None
    amount: int
    amount_captured: int
    currency: str
    order_id: str | None = None


class CheckoutCompleted(StripeEvent, frozen=True):
    """A `checkout.session.completed` event; `payment_status` "paid" means money arrived."""

    session_id: str
    intent_id: str | None
    payment_status: str
    mode: str | None = None
    amount_total: int | None = None
    currency: str | None = None
    order_id: str | None = None


class IgnoredEvent(StripeEvent, frozen=True):
    """An event type commerce does not act on."""


AnyStripeEvent = IntentEvent | ChargeRefunded | ChargeSucceeded | CheckoutCompleted | IgnoredEvent


class _Head(msgspec.Struct, frozen=True):
    id: _Id
    type: _Id
    livemode: bool
    created: int
    api_version: str | None = None


class _Metadata(msgspec.Struct, frozen=True):
    order_id: str | None = None


class _Error(msgspec.Struct, frozen=True):
    code: str | None = None
    message: str | None = None


class _Intent(msgspec.Struct, frozen=True, kw_only=True):
    id: _Id
    amount: _Amount
    amount_received: _Amount
    currency: _Currency
    status: _Id
    metadata: _Metadata | None = None
    last_payment_error: _Error | None = None


class _Charge(msgspec.Struct, frozen=True, kw_only=True):
    id: _Id
    payment_intent: _Id | None = None
    amount: _Amount
    amount_refunded: _Amount
    refunded: bool
    currency: _Currency
    metadata: _Metadata | None = None
    amount_captured: _Amount | None = None


class _Session(msgspec.Struct, frozen=True, kw_only=True):
    id: _Id
    payment_intent: _Id | None = None
    payment_status: _Id
    mode: str | None = None
    amount_total: _Amount | None = None
    currency: _Currency | None = None
    metadata: _Metadata | None = None
    client_reference_id: str | None = None


class _IntentData(msgspec.Struct, frozen=True):
    object: _Intent


class _ChargeData(msgspec.Struct, frozen=True):
    object: _Charge


class _SessionData(msgspec.Struct, frozen=True):
    object: _Session


class _IntentBody(msgspec.Struct, frozen=True):
    data: _IntentData


class _SessionBody(msgspec.Struct, frozen=True):
    data: _SessionData


class _ChargeBody(msgspec.Struct, frozen=True):
    data: _ChargeData


_head = msgspec.json.Decoder(_Head)
_intent = msgspec.json.Decoder(_IntentBody)
_charge = msgspec.json.Decoder(_ChargeBody)
_session = msgspec.json.Decoder(_SessionBody)


def _currency(code: str) -> str:
    try:
        return normalise_currency(code)
    except UnknownCurrency as exc:
        raise MalformedEvent(f"{exc} - at `$.data.object.currency`") from exc


def _order_id(metadata: _Metadata | None) -> str | None:
    return metadata.order_id if metadata else None


def _intent_event(head: _Head, body: bytes) -> IntentEvent:
    pi = _intent.decode(body).data.object
    error = pi.last_payment_error or _Error()
    return IntentEvent(
        **_common(head),
        intent_id=pi.id,
        amount=pi.amount,
        amount_received=pi.amount_received,
        currency=_currency(pi.currency),
        status=pi.status,
        order_id=_order_id(pi.metadata),
        error_code=error.code,
        error_message=error.message,
    )


def _charge_event(head: _Head, body: bytes) -> ChargeRefunded:
    charge = _charge.decode(body).data.object
    return ChargeRefunded(
        **_common(head),
        charge_id=charge.id,
        intent_id=charge.payment_intent,
        amount=charge.amount,
        amount_refunded=charge.amount_refunded,
        refunded=charge.refunded,
        currency=_currency(charge.currency),
        order_id=_order_id(charge.metadata),
    )


def _charge_succeeded(head: _Head, body: bytes) -> ChargeSucceeded:
    charge = _charge.decode(body).data.object
    captured = charge.amount if charge.amount_captured is None else charge.amount_captured
    return ChargeSucceeded(
        **_common(head),
        charge_id=charge.id,
        intent_id=charge.payment_intent,
        amount=charge.amount,
        amount_captured=captured,
        currency=_currency(charge.currency),
        order_id=_order_id(charge.metadata),
    )


def _checkout_completed(head: _Head, body: bytes) -> CheckoutCompleted:
    session = _session.decode(body).data.object
    return CheckoutCompleted(
        **_common(head),
        session_id=session.id,
        intent_id=session.payment_intent,
        payment_status=session.payment_status,
        mode=session.mode,
        amount_total=session.amount_total,
        currency=_currency(session.currency) if session.currency else None,
        order_id=_order_id(session.metadata) or session.client_reference_id,
    )


_BY_TYPE: dict[str, Callable[[_Head, bytes], AnyStripeEvent]] = {
    "charge.refunded": _charge_event,
    "charge.succeeded": _charge_succeeded,
    "checkout.session.completed": _checkout_completed,
    "checkout.session.async_payment_succeeded": _checkout_completed,
    "checkout.session.async_payment_failed": _checkout_completed,
}


class _Common(TypedDict):
    event_id: str
    event_type: str
    livemode: bool
    created: int
    api_version: str | None


def _common(head: _Head) -> _Common:
    return {
        "event_id": head.id,
        "event_type": head.type,
        "livemode": head.livemode,
        "created": head.created,
        "api_version": head.api_version,
    }


def decode_event(body: bytes) -> AnyStripeEvent:
    """Decode a webhook body (raw bytes) into the fields commerce needs.

    Raises `BodyTooLarge` before parsing a body over `MAX_BODY`, and `MalformedEvent`
    (naming the field) for invalid JSON, missing fields and wrong types, and for a body
    that is not strict JSON (`commerce.bodies.check_body`).
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"the body must be raw bytes, not {type(body).__name__}")
    check_body(body)
    try:
        head = _head.decode(body)
        if head.type.startswith("payment_intent."):
            return _intent_event(head, body)
        decode = _BY_TYPE.get(head.type)
        if decode is not None:
            return decode(head, body)
        return IgnoredEvent(**_common(head))
    except msgspec.ValidationError as exc:
        raise MalformedEvent(str(exc)) from exc
    except msgspec.DecodeError as exc:
        raise MalformedEvent(f"invalid JSON: {exc}") from exc
