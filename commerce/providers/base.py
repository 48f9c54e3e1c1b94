"""The outbound provider seam: the `PaymentProvider` protocol and the values it answers with.

A provider call carries the step's idempotency key; the same key must give the same answer.
A failure is a typed `ProviderError`: `CardDeclined` is final for that attempt,
`RateLimited` and `ProviderUnavailable` are retryable (the flow's retry policy backs off),
`InvalidRequest` is final. Inbound, every provider's events become the neutral
`PaymentNotice` (commerce.events) at its decoder; see commerce.notices.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import msgspec

from commerce.money import Money


class PaymentIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's payment intent for one order: `amount` minor units of `currency`."""

    intent_id: str
    order_id: str
    amount: int
    currency: str
    status: str = "requires_payment_method"
    livemode: bool = False

    @property
    def money(self) -> Money:
        """The amount to be paid."""
        return Money(self.amount, self.currency)


class Refund(msgspec.Struct, frozen=True, kw_only=True):
    """A refund of `amount` minor units against a payment intent."""

    refund_id: str
    intent_id: str
    amount: int
    currency: str
    status: str = "succeeded"

    @property
    def money(self) -> Money:
        """The amount given back."""
        return Money(self.amount, self.currency)


class PaymentProvider(Protocol):
    """What commerce needs from a payment provider; raises `ProviderError` subclasses.

    `name` is recorded with every intent it creates, so refunds and cancels of that
    intent go back to the same provider.
    """

    @property
    def name(self) -> str: ...

    def create_intent(
        self, order_id: str, amount: Money, *, idempotency_key: str
    ) -> PaymentIntent: ...

    def refund(self, intent_id: str, amount: Money, *, idempotency_key: str) -> Refund: ...

    def cancel(self, intent_id: str, *, idempotency_key: str) -> PaymentIntent: ...

    def retrieve(self, intent_id: str) -> PaymentIntent: ...


MAX_IDEMPOTENCY_KEY = 255
"""Stripe's limit on an idempotency key's length."""


def bounded_key(key: str) -> str:
    """`key` itself if it fits `MAX_IDEMPOTENCY_KEY`, else a stable digest of it that does."""
    if len(key) <= MAX_IDEMPOTENCY_KEY:
        return key
    return f"{key[:120]}~sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def derive_id(prefix: str, key: str) -> str:
    """`prefix` + the first 24 hex digits of sha256(`key`): stable across processes."""
    return prefix + hashlib.sha256(key.encode()).hexdigest()[:24]
