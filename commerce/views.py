"""An order's view: its row, quote and timeline, from its events (the rows: `readmodel`)."""

from __future__ import annotations

from typing import Any

import msgspec

from commerce.errors import UnknownOrder
from commerce.events import AnyCommerceEvent, OrderPlaced, PaymentIntentCreated
from commerce.handlers import order_stream
from commerce.order import ORDER_EVENTS, OrderState, evolve
from commerce.pricing import Quote
from commerce.readmodel import OrderRow
from ledger import Ledger


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One event in an order's history."""

    position: int
    at: str
    event: str
    detail: dict[str, Any]


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """An order with its quote and timeline, and what a storefront needs to let it be paid.

    `client_secret` (Stripe.js) or `checkout_url` (a hosted page) come from the order's
    intent as its provider created it (None when the provider gave none).
    """

    order: OrderRow
    quote: Quote
    timeline: list[TimelineEntry]
    client_secret: str | None = None
    checkout_url: str | None = None


ORDER_STATUSES: tuple[str, ...] = (
    "placed",
    "awaiting_payment",
    "needs_review",
    "fulfilled",
    "partially_refunded",
    "refunded",
    "expired",
    "cancelled",
    "failed",
    "moved",
)
"""Every status an order can have."""

_decode_event = msgspec.json.Decoder(AnyCommerceEvent).decode


def order_view(ledger: Ledger, order_id: str) -> OrderView:
    """The order, its quote and its timeline (every event of its stream, oldest first).

    The row is folded from the events read for the timeline anyway (one query, not two).
    """
    timeline, placed, intent, state = [], None, None, OrderState()
    for record in ledger.records(order_stream(order_id)):
        event = _decode_event(record.data)
        if isinstance(event, OrderPlaced):
            placed = event
        elif isinstance(event, PaymentIntentCreated):
            intent = event
        if isinstance(event, ORDER_EVENTS):
            state = evolve(state, event)
        detail = {
            k: v for k, v in msgspec.to_builtins(event).items() if k not in ("type", "order_id")
        }
        entry = TimelineEntry(
            position=record.position, at=record.recorded_at, event=record.type, detail=detail
        )
        timeline.append(entry)
    if placed is None:
        raise UnknownOrder(order_id)
    return OrderView(
        order=_row(order_id, placed, state),
        quote=placed.quote,
        timeline=timeline,
        client_secret=intent.client_secret if intent else None,
        checkout_url=intent.checkout_url if intent else None,
    )


def _row(order_id: str, placed: OrderPlaced, state: OrderState) -> OrderRow:
    """The order's row as the projection stores it (both are `evolve` of its events)."""
    return OrderRow(
        order_id=order_id,
        status=state.status,
        currency=placed.quote.currency,
        total=placed.quote.total,
        paid=state.paid,
        refunded=state.refunded,
        intent_id=state.intent_id,
        placed_at=placed.placed_at,
    )
