"""The outbound provider seam: the `PaymentProvider` protocol and the values it answers with.

A provider call carries the step's idempotency key; the same key must give the same answer.
A failure is a typed `ProviderError`: `CardDeclined` is final for that attempt,
`RateLimited` and `ProviderUnavailable` are retryable (the flow's retry policy backs off),
`InvalidRequest` is final.

Inbound, a `WebhookSource` per provider authenticates a delivery's raw body and headers and
decodes it into one `Inbound`: an event id and the neutral `Fact` it reports (a payment
succeeded or failed, a cancellation, a refund, or nothing we act on). Provider formats stop
at the source; the settler decides on these values only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Protocol

import msgspec

from commerce.events import PaymentNotice
from commerce.money import Money

IntentStatus = str
"""A provider-neutral intent state: `requires_payment_method` (open, waiting to be paid),
`processing`, `succeeded`, `canceled` or `failed`; each provider maps its own onto these."""


class PaymentIntent(msgspec.Struct, frozen=True, kw_only=True):
    """A provider's payment intent for one order: `amount` minor units of `currency`."""

    intent_id: str
    order_id: str
    amount: int
    currency: str
    status: IntentStatus = "requires_payment_method"
    livemode: bool = False
    client_secret: str | None = None
    """What a storefront needs to confirm the payment in the browser (Stripe.js), if any."""
    checkout_url: str | None = None
    """A hosted payment page to send the customer to, if the provider has one."""

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


# -- inbound -------------------------------------------------------------------------


class Cancellation(msgspec.Struct, frozen=True, kw_only=True):
    """The provider cancelled the payment intent: the order must not wait for it any more."""

    intent_id: str


class RefundReport(msgspec.Struct, frozen=True, kw_only=True):
    """Money given back on an intent; `amount_refunded` is cumulative over it.

    `full`: the provider reports the whole payment refunded (else the settler compares
    `amount_refunded` with the intent's amount).
    """

    intent_id: str
    amount_refunded: int
    currency: str
    full: bool = False


class Orphan(msgspec.Struct, frozen=True, kw_only=True):
    """An authentic event about money that cannot be one of our intents; recorded, not acted on."""

    intent_id: str | None
    reason: str


class NotActedOn(msgspec.Struct, frozen=True, kw_only=True):
    """An authentic event commerce does not act on (answered 2xx, recorded as ignored)."""

    reason: str


Fact = PaymentNotice | Cancellation | RefundReport | Orphan | NotActedOn
"""What an inbound event reports, in neutral terms (`PaymentNotice`: succeeded or failed)."""


class Inbound(msgspec.Struct, frozen=True, kw_only=True):
    """One authentic provider event, decoded: who sent it, its id, and the fact it reports.

    `event_type` is the provider's own name for it, kept for the record only. `livemode` is
    None when the provider's events do not say (the source's keys decide). `order_hint` is
    the order the event names, if it names one (used when its intent is not known here).
    """

    provider: str
    event_id: str
    event_type: str
    fact: Fact
    livemode: bool | None = None
    order_hint: str | None = None


class WebhookSource(Protocol):
    """One provider's inbound side: prove a delivery authentic, then say what it reports.

    `authenticate` raises a `BadSignature` subclass (nothing is parsed before it passes);
    `decode` raises `MalformedEvent` for a body that is not a well-formed event. `decode` may
    call the provider (an unsigned notice is confirmed with its API); it runs before the
    settle transaction, so nothing is locked while it waits.
    """

    @property
    def name(self) -> str: ...

    def authenticate(self, body: bytes, headers: Mapping[str, str], *, now: int) -> None: ...

    def decode(self, body: bytes) -> Inbound: ...


def reported(event_id: str, intent: PaymentIntent, *, failure: str) -> Fact:
    """What a provider's own answer about `intent` reports, as the fact `event_id` carries.

    Succeeded or failed: a `PaymentNotice` of the intent's amount (`failure` says why it
    failed); canceled: a `Cancellation`; any other state (open, processing): nothing yet.
    """
    if intent.status in ("succeeded", "failed"):
        succeeded = intent.status == "succeeded"
        return PaymentNotice(
            event_id=event_id,
            intent_id=intent.intent_id,
            succeeded=succeeded,
            amount=intent.amount,
            currency=intent.currency,
            reason="" if succeeded else failure,
        )
    if intent.status == "canceled":
        return Cancellation(intent_id=intent.intent_id)
    return NotActedOn(reason=f"the provider reports intent {intent.intent_id} {intent.status}")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header `name`, whatever the case of its key (HTTP names are case-blind)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None
