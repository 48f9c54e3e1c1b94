"""The webhook sources a service mounts, from the environment: one function, every provider."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from commerce import StripeWebhooks, WebhookSource
from service.errors import SourceUnavailable

STRIPE_SECRETS = ("STRIPE_WEBHOOK_SECRET", "ORDERFLOW_WEBHOOK_SECRET")
"""The Stripe endpoint's signing secret (`whsec_...`); the second is what the CLI reads."""
SUMUP_SECRET = "SUMUP_WEBHOOK_SECRET"
SUMUP_MODULE = "commerce.providers.sumup_webhooks"


def sources_from(environ: Mapping[str, str]) -> dict[str, WebhookSource]:
    """Every provider configured in `environ`, by the name in its URL (`/webhooks/<name>`).

    Stripe from `STRIPE_WEBHOOK_SECRET` (else `ORDERFLOW_WEBHOOK_SECRET`). SumUp is added
    here once its source exists in this build (see `_sumup`).
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
    """SumUp's source, when configured and present; None when not configured or absent.

    Imported lazily by name: the module is being written alongside this one, and a build
    without it must still serve Stripe.
    """
    if not environ.get(SUMUP_SECRET):
        return None
    try:
        importlib.import_module(SUMUP_MODULE)
    except ModuleNotFoundError:
        return None
    # TODO(merge): build `SumUpWebhooks(secret, client, ...)` here once its client (the API
    # it confirms unsigned notices with) is exported from commerce; until then say so.
    raise SourceUnavailable("sumup", f"${SUMUP_SECRET} is set but this build cannot build it yet")
