"""Payment providers behind one seam: the protocol and values (`base`), `fake`, `stripe`, `sumup`.

A new provider is a new module here that satisfies `PaymentProvider`.
"""

from __future__ import annotations

from commerce.providers.base import (
    Cancellation,
    Fact,
    Inbound,
    NotActedOn,
    Orphan,
    PaymentIntent,
    PaymentProvider,
    Refund,
    RefundReport,
    WebhookSource,
)
from commerce.providers.fake import FakeProvider
from commerce.providers.stripe import STRIPE_API_VERSION, StripeProvider
from commerce.providers.sumup import SumUpProvider
from commerce.providers.sumup_webhooks import SumUpWebhooks

__all__ = [
    "STRIPE_API_VERSION",
    "Cancellation",
    "Fact",
    "FakeProvider",
    "Inbound",
    "NotActedOn",
    "Orphan",
    "PaymentIntent",
    "PaymentProvider",
    "Refund",
    "RefundReport",
    "StripeProvider",
    "SumUpProvider",
    "SumUpWebhooks",
    "WebhookSource",
]
