"""The webhook sources a service mounts, from the environment: one function, every provider."""

from __future__ import annotations

from collections.abc import Mapping

from commerce import (
    PROVIDER_KEYS,
    StripeWebhooks,
    SumUpProvider,
    SumUpWebhooks,
    WebhookSource,
    provider_from,
)
from service.errors import SourceUnavailable

STRIPE_SECRETS = ("STRIPE_WEBHOOK_SECRET", "ORDERFLOW_WEBHOOK_SECRET")
"""The Stripe endpoint's signing secret (`whsec_...`); the second is what the CLI reads."""
SUMUP_SECRET = "SUMUP_WEBHOOK_SECRET"


def sources_from(environ: Mapping[str, str]) -> dict[str, WebhookSource]:
    """Every provider configured in `environ`, by the name in its URL (`/webhooks/<name>`).

    Stripe from `STRIPE_WEBHOOK_SECRET` (else `ORDERFLOW_WEBHOOK_SECRET`). SumUp whenever
    its API keys are there (it confirms every event with its API, and takes the unsigned
    legacy notice that way), with `SUMUP_WEBHOOK_SECRET` for its signed events; that secret
    without the keys is `SourceUnavailable`.
    """
    found: dict[str, WebhookSource] = {}
    secret = next((environ[name] for name in STRIPE_SECRETS if environ.get(name)), None)
    if secret:
        found[StripeWebhooks.name] = StripeWebhooks(secret)
    sumup = _sumup(environ)
    if sumup is not None:
        found[sumup.name] = sumup
    return found


def _sumup(environ: Mapping[str, str]) -> WebhookSource | None:
    keys = PROVIDER_KEYS["sumup"]
    if not all(environ.get(key) for key in keys):
        if environ.get(SUMUP_SECRET):
            needs = " and ".join(keys)
            why = f"${SUMUP_SECRET} is set; SumUp's events are confirmed with its API: set {needs}"
            raise SourceUnavailable("sumup", why)
        return None
    client = provider_from("sumup", environ)
    assert isinstance(client, SumUpProvider)
    return SumUpWebhooks(environ.get(SUMUP_SECRET) or None, client)
