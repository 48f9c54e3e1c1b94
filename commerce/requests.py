"""The requests the order flows yield. Imperative names; each declares its response type."""

from __future__ import annotations

import msgspec

from commerce.events import PaymentNotice, StockLine
from commerce.pricing import Quote
from commerce.providers.base import PaymentIntent, Refund
from flowlib import Request, RetryPolicy

PROVIDER_RETRY = RetryPolicy(max_attempts=5, backoff_seconds=2.0, multiplier=2.0)
"""Rate limits and outages at the provider are retried durably: 2 s, 4 s, 8 s, 16 s."""


class PlaceOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The order flow's argument: what was ordered and how long payment may take."""

    order_id: str
    lines: list[StockLine]
    coupon: str | None = None
    payment_timeout_seconds: int = 1800


class QuoteOrder(Request[Quote], frozen=True):
    """Price the order from the catalog and record it as placed."""

    order_id: str
    lines: list[StockLine]
    coupon: str | None = None


class ReserveStock(Request[None], frozen=True):
    """Hold the order's stock, all lines or none (`OutOfStock` lists every short SKU)."""

    order_id: str
    lines: list[StockLine]


class CreatePaymentIntent(Request[PaymentIntent], frozen=True):
    """Ask the provider for a payment intent (an outside effect, with an idempotency key)."""

    order_id: str
    amount: int
    currency: str


class RecordIntent(Request[None], frozen=True):
    """Record the intent, so its webhooks can be routed to the order."""

    order_id: str
    intent: PaymentIntent


class CancelIntent(Request[str], frozen=True):
    """Cancel the order's intent at its provider once the order closed; answers its status.

    An outside effect with an idempotency key, so the customer can no longer pay it.
    """

    order_id: str
    intent_id: str


class TakeParked(Request[list[PaymentNotice]], frozen=True):
    """Collect payment events that arrived before the flow was waiting for them."""

    order_id: str
    intent_id: str


class AwaitPayment(Request[PaymentNotice], frozen=True):
    """Wait for the provider's word on the intent (a webhook, or a trusted direct settle)."""

    order_id: str
    intent_id: str


class RecordFailedPayment(Request[None], frozen=True):
    """Record a failed attempt; the customer may try again until the timeout."""

    order_id: str
    notice: PaymentNotice


class Fulfil(Request[None], frozen=True):
    """Record the payment, commit the reserved stock and mark the order fulfilled."""

    order_id: str
    lines: list[StockLine]
    notice: PaymentNotice


class HoldForReview(Request[None], frozen=True):
    """Keep a payment that does not match the quote, and the reservation, for a person."""

    order_id: str
    notice: PaymentNotice
    reason: str
    record_payment: bool = True


class CloseOrder(Request[None], frozen=True):
    """Release the reserved stock and close the order as expired, cancelled, failed or refunded."""

    order_id: str
    lines: list[StockLine]
    status: str
    reason: str


class RecordLatePayment(Request[None], frozen=True):
    """Record a payment that came for an order already closed."""

    order_id: str
    notice: PaymentNotice


class IssueRefund(Request[Refund], frozen=True):
    """Give a payment back through the provider (an outside effect, with an idempotency key)."""

    order_id: str
    intent_id: str
    amount: int
    currency: str


class RecordRefund(Request[None], frozen=True):
    """Record the refund we issued; the order's status becomes refunded."""

    order_id: str
    refund: Refund
    reason: str
