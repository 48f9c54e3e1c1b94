"""From a decoded provider event to the neutral payment notice the settler decides on.

Three Stripe events report the same money arriving: `payment_intent.succeeded`,
`charge.succeeded` and a paid `checkout.session.completed`. Each becomes one
`PaymentNotice` about the payment intent, so the settler deduplicates them per intent (the
first settles, the others find the intent already paid), and an account subscribed only to
Checkout events still fulfils.
"""

from __future__ import annotations

from commerce.events import PaymentNotice
from commerce.stripe_events import (
    AnyStripeEvent,
    ChargeSucceeded,
    CheckoutCompleted,
    IntentEvent,
)

SUCCEEDED, FAILED = "payment_intent.succeeded", "payment_intent.payment_failed"
CANCELED = "payment_intent.canceled"
INTENT_PREFIX = "pi_"


def payment_notice(event: AnyStripeEvent) -> PaymentNotice | str | None:
    """The payment `event` reports; text says why it reports none; None: not a payment event."""
    if isinstance(event, IntentEvent) and event.event_type in (SUCCEEDED, FAILED):
        succeeded = event.event_type == SUCCEEDED
        return PaymentNotice(
            event_id=event.event_id,
            intent_id=event.intent_id,
            succeeded=succeeded,
            amount=event.amount_received if succeeded else event.amount,
            currency=event.currency,
            reason=event.error_message or event.error_code or "",
        )
    if isinstance(event, ChargeSucceeded):
        if event.intent_id is None:
            return "orphan: a charge made without a payment intent"
        return _paid(event.event_id, event.intent_id, event.amount_captured, event.currency)
    if isinstance(event, CheckoutCompleted):
        return _checkout(event)
    return None


def _checkout(event: CheckoutCompleted) -> PaymentNotice | str:
    if event.payment_status != "paid":
        return f"the Checkout session is {event.payment_status}: nothing was paid yet"
    if event.intent_id is None or event.amount_total is None or event.currency is None:
        return f"a Checkout session in {event.mode or 'unknown'} mode, without a one-off payment"
    return _paid(event.event_id, event.intent_id, event.amount_total, event.currency)


def _paid(event_id: str, intent_id: str, amount: int, currency: str) -> PaymentNotice:
    return PaymentNotice(
        event_id=event_id, intent_id=intent_id, succeeded=True, amount=amount, currency=currency
    )


def orphan_reason(intent_id: str | None) -> str | None:
    """Why an id cannot be a payment intent of ours (kept as an orphan), or None if it can."""
    if intent_id is None or intent_id.startswith(INTENT_PREFIX):
        return None
    return f"orphan: {intent_id!r} is not a payment intent id"
