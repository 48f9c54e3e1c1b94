"""Payment providers behind one seam: the protocols and values (`base`), the fake, Stripe, SumUp.

A new provider is a new module here: a `PaymentProvider` (outbound) and a `WebhookSource`
(inbound).
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
from commerce.providers.stripe_webhooks import StripeWebhooks
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
    "StripeWebhooks",
    "SumUpProvider",
    "SumUpWebhooks",
    "WebhookSource",
]
