"""Reconciliation, the missed-webhook safety net: ask the provider about orders still waiting.

Stripe retries a webhook for three days; a lost one would leave its order waiting until it
times out and its payment refunded. `reconcile` retrieves each waiting order's intent and
settles what the provider reports through the settler's idempotent path, as a webhook would:
a later webhook for the same payment is then "already settled".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from commerce import readmodel
from commerce.errors import LiveModeMismatch, ProviderError
from commerce.providers.base import Inbound, PaymentIntent, PaymentProvider, reported
from commerce.webhooks import Settler
from ledger import Ledger

REPORTED = ("succeeded", "failed", "canceled")
"""The intent states reconciliation settles; the others (open, processing) keep waiting."""


class Reconciled(msgspec.Struct, frozen=True, kw_only=True):
    """One waiting order: what its provider reports, and what settling that did."""

    order_id: str
    intent_id: str
    provider_status: str | None
    outcome: str
    reason: str


def reconcile(
    ledger: Ledger,
    settler: Settler,
    provider_of: Callable[[str, str], PaymentProvider],
    *,
    placed_before: datetime,
) -> list[Reconciled]:
    """Retrieve the intent of every order awaiting payment placed by `placed_before`.

    Each provider call runs outside any transaction; a failing one is reported for that
    order (`outcome="error"`) and the others go on.
    """
    done = []
    for row in readmodel.orders(ledger, "awaiting_payment"):
        if row.intent_id is None or row.placed_at > placed_before:
            continue
        try:
            provider = provider_of(row.order_id, row.intent_id)
            intent = provider.retrieve(row.intent_id)
            done.append(_settle(settler, provider.name, row, intent))
        except (ProviderError, LiveModeMismatch) as exc:
            done.append(_report(row, None, "error", str(exc)))
    return done


def _settle(
    settler: Settler, provider: str, row: readmodel.OrderRow, intent: PaymentIntent
) -> Reconciled:
    if intent.status not in REPORTED:
        return _report(row, intent.status, "waiting", f"the provider reports {intent.status}")
    event_id = f"reconcile:{intent.intent_id}:{intent.status}"
    event = Inbound(
        provider=provider,
        event_id=event_id,
        event_type=f"reconcile.{intent.status}",
        fact=reported(event_id, intent, failure="the provider reports the payment failed"),
        livemode=intent.livemode,
        order_hint=row.order_id,
    )
    result = settler.settle(event, msgspec.json.encode(event))  # the same body each time
    return _report(row, intent.status, result.outcome, result.reason)


def _report(row: readmodel.OrderRow, status: str | None, outcome: str, reason: str) -> Reconciled:
    return Reconciled(
        order_id=row.order_id,
        intent_id=row.intent_id or "",
        provider_status=status,
        outcome=outcome,
        reason=reason,
    )
