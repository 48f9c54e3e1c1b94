"""Stripe's inbound side: a signed delivery becomes one neutral `Inbound`.

`StripeWebhooks.authenticate` checks the `Stripe-Signature` header on the raw body
(commerce.signature); `decode` reads it with commerce.stripe_events and says what it
reports. Four Stripe events report the same money arriving: `payment_intent.succeeded`,
`charge.succeeded`, and a paid `checkout.session.completed` or
`checkout.session.async_payment_succeeded`. Each becomes one `PaymentNotice` about the
payment intent, so the settler deduplicates them per intent (the first settles, the others
find the intent already paid), and an account subscribed only to Checkout events still
fulfils. An id that cannot be a payment intent (pay-rails' fixture sends a payment method
id, "pm_1234") is an `Orphan`: recorded, never answered 400 (Stripe would retry for days).
"""

from __future__ import annotations

from collections.abc import Mapping

from commerce.events import PaymentNotice
from commerce.providers.base import (
    Cancellation,
    Fact,
    Inbound,
    NotActedOn,
    Orphan,
    RefundReport,
    header,
)
from commerce.signature import verify
from commerce.stripe_events import (
    AnyStripeEvent,
    ChargeRefunded,
    ChargeSucceeded,
    CheckoutCompleted,
    IntentEvent,
    decode_event,
)

SIGNATURE_HEADER = "Stripe-Signature"
SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"
CANCELED = "payment_intent.canceled"
ASYNC_FAILED = "checkout.session.async_payment_failed"
INTENT_PREFIX = "pi_"


class StripeWebhooks:
    """The `WebhookSource` for Stripe: the endpoint's signing secret and clock tolerance."""

    name = "stripe"

    def __init__(self, secret: str, *, tolerance: int = 300) -> None:
        self.secret = secret
        self.tolerance = tolerance

    def authenticate(self, body: bytes, headers: Mapping[str, str], *, now: int) -> None:
        """Check the `Stripe-Signature` header (a `BadSignature` subclass if it fails)."""
        signature = header(headers, SIGNATURE_HEADER)
        verify(body, signature, self.secret, tolerance=self.tolerance, now=now)

    def decode(self, body: bytes) -> Inbound:
        """What the event reports (`MalformedEvent` for a body that is not a Stripe event)."""
        return inbound(decode_event(body))


def inbound(event: AnyStripeEvent) -> Inbound:
    """A decoded Stripe event in neutral terms."""
    return Inbound(
        provider=StripeWebhooks.name,
        event_id=event.event_id,
        event_type=event.event_type,
        fact=_fact(event),
        livemode=event.livemode,
        order_hint=getattr(event, "order_id", None),
    )


def _fact(event: AnyStripeEvent) -> Fact:
    if isinstance(event, IntentEvent):
        return _intent_fact(event)
    if isinstance(event, ChargeRefunded):
        return _refund(event)
    if isinstance(event, ChargeSucceeded):
        if event.intent_id is None:
            return NotActedOn(reason="orphan: a charge made without a payment intent")
        return _paid(event, event.intent_id, event.amount_captured, event.currency)
    if isinstance(event, CheckoutCompleted):
        return _checkout(event)
    return NotActedOn(reason=f"event type {event.event_type} is not acted on")


def _intent_fact(event: IntentEvent) -> Fact:
    orphan = _orphan(event.intent_id)
    if orphan is not None:
        return orphan
    if event.event_type == CANCELED:
        return Cancellation(intent_id=event.intent_id)
    if event.event_type not in (SUCCEEDED, FAILED):
        return NotActedOn(reason=f"event type {event.event_type} is not acted on")
    succeeded = event.event_type == SUCCEEDED
    return PaymentNotice(
        event_id=event.event_id,
        intent_id=event.intent_id,
        succeeded=succeeded,
        amount=event.amount_received if succeeded else event.amount,
        currency=event.currency,
        reason=event.error_message or event.error_code or "",
    )


def _refund(event: ChargeRefunded) -> Fact:
    if event.intent_id is None:
        return NotActedOn(reason="refund of a charge without a payment intent")
    return _orphan(event.intent_id) or RefundReport(
        intent_id=event.intent_id,
        amount_refunded=event.amount_refunded,
        currency=event.currency,
        full=event.fully_refunded,
    )


def _checkout(event: CheckoutCompleted) -> Fact:
    failed = event.event_type == ASYNC_FAILED
    if event.payment_status != "paid" and not failed:
        why = f"the Checkout session is {event.payment_status}: nothing was paid yet"
        return NotActedOn(reason=why)
    if event.intent_id is None or event.amount_total is None or event.currency is None:
        why = f"a Checkout session in {event.mode or 'unknown'} mode, without a one-off payment"
        return NotActedOn(reason=why)
    return _paid(event, event.intent_id, event.amount_total, event.currency, succeeded=not failed)


def _paid(
    event: AnyStripeEvent, intent_id: str, amount: int, currency: str, *, succeeded: bool = True
) -> Fact:
    return _orphan(intent_id) or PaymentNotice(
        event_id=event.event_id,
        intent_id=intent_id,
        succeeded=succeeded,
        amount=amount,
        currency=currency,
        reason="" if succeeded else "the delayed payment failed",
    )


def _orphan(intent_id: str) -> Orphan | None:
    """An id that cannot be a payment intent of ours is kept as an orphan."""
    if intent_id.startswith(INTENT_PREFIX):
        return None
    return Orphan(intent_id=intent_id, reason=f"orphan: {intent_id!r} is not a payment intent id")
