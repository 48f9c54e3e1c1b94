"""Review holds: a person (or the hold's expiry) accepts a held payment or refunds it.

A payment that does not match its quote is held with the order's stock (`needs_review`).
`resolve` ends the hold inside the caller's transaction: *accept* fulfils the order (its
stock must still be held), *refund* starts the review-refund flow, which gives the money
back through the provider and releases the stock. A hold older than the shop's review
timeout is refunded by `expired` + `resolve` when timers run, and that is recorded too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Literal

import msgspec

from commerce import readmodel
from commerce.errors import InvalidTransition, UnknownOrder
from commerce.events import (
    AnyCommerceEvent,
    OrderFulfilled,
    OrderMovedOut,
    PaymentDisputed,
    PaymentNotice,
    ReviewResolved,
    StockCommitted,
    StockLine,
    StockReleased,
    StockReserved,
)
from commerce.flows import REVIEW_REFUND_FLOW
from commerce.handlers import order_stream
from commerce.order import OrderState
from flowlib import Engine, stream_of
from ledger import Ledger

Decision = Literal["accept", "refund"]
DECISIONS: tuple[str, ...] = ("accept", "refund")
_decode = msgspec.json.Decoder(AnyCommerceEvent).decode


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    """An order's current review hold: the payment held, and the stock it still holds."""

    order_id: str
    notice: PaymentNotice
    ordered: list[StockLine]
    held: list[StockLine]
    held_at: datetime
    number: int  # the how-many-th hold of this order (names its refund flow)

    @property
    def refund_flow(self) -> str:
        """The id of the flow that refunds this hold."""
        return f"review:{self.order_id}:{self.number}"


def held_stock(events: Iterable[object]) -> list[StockLine]:
    """The lines an order still holds reserved: reserved, less released, sold or moved out."""
    held: Counter[str] = Counter()
    for event in events:
        if isinstance(event, StockReserved):
            held.update({line.sku: line.quantity for line in event.lines})
        elif isinstance(event, StockReleased | StockCommitted | OrderMovedOut):
            held.subtract({line.sku: line.quantity for line in event.lines})
    return [StockLine(sku, quantity) for sku, quantity in sorted(held.items()) if quantity > 0]


def hold_of(ledger: Ledger, order_id: str) -> Hold:
    """The order's current hold (`UnknownOrder`, or `InvalidTransition` if it is not held)."""
    records = ledger.records(order_stream(order_id))
    if not records:
        raise UnknownOrder(order_id)
    events = [(_decode(r.data), r.recorded_at) for r in records]
    holds = [(e, at) for e, at in events if isinstance(e, PaymentDisputed)]
    status = _state(ledger, order_id).status
    if status != "needs_review" or not holds:
        raise InvalidTransition(order_id, status, "resolve a review hold (none is open)")
    last, recorded_at = holds[-1]
    notice = PaymentNotice(
        event_id=last.event_id,
        intent_id=last.intent_id,
        succeeded=True,
        amount=last.amount,
        currency=last.currency,
        reason=last.reason,
    )
    reserved = [e for e, _ in events if isinstance(e, StockReserved)]
    return Hold(
        order_id=order_id,
        notice=notice,
        ordered=reserved[0].lines if reserved else [],
        held=held_stock(e for e, _ in events),
        held_at=last.held_at or datetime.fromisoformat(recorded_at),
        number=len(holds),
    )


def resolve(
    ledger: Ledger, engine: Engine, order_id: str, decision: Decision, *, reason: str
) -> str | None:
    """Decide the order's hold in the open transaction; the refund flow to run effects for."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    hold = hold_of(ledger, order_id)
    if ledger.version(stream_of(hold.refund_flow)):  # decided before: its refund is under way
        if decision == "accept":
            raise InvalidTransition(order_id, "being refunded after review", "accept it")
        return hold.refund_flow
    resolved = ReviewResolved(order_id=order_id, decision=decision, reason=reason)
    if decision == "accept":
        _accept(ledger, hold, resolved)
        return None
    state = _state(ledger, order_id)
    ledger.append(order_stream(order_id), [resolved])
    args = (order_id, hold.notice, state.paid - state.refunded, hold.held, reason)
    engine.start(REVIEW_REFUND_FLOW, *args, flow_id=hold.refund_flow, defer_effects=True)
    return hold.refund_flow


def _accept(ledger: Ledger, hold: Hold, resolved: ReviewResolved) -> None:
    if not hold.held or _units(hold.held) != _units(hold.ordered):
        raise InvalidTransition(
            hold.order_id, "held for review without its stock", "accept it (refund it instead)"
        )
    order_id = hold.order_id
    committed = StockCommitted(order_id=order_id, lines=hold.held)
    ledger.append(order_stream(order_id), [resolved, committed, OrderFulfilled(order_id=order_id)])


def expired(ledger: Ledger, now: datetime, timeout_seconds: int) -> list[str]:
    """Orders whose review hold is older than the timeout and not yet being refunded."""
    due = []
    for order_id in readmodel.orders_holding_review(ledger):
        hold = hold_of(ledger, order_id)
        if hold.held_at + timedelta(seconds=timeout_seconds) > now:
            continue
        if not ledger.version(stream_of(hold.refund_flow)):
            due.append(order_id)
    return due


def _state(ledger: Ledger, order_id: str) -> OrderState:
    state = readmodel.order_state(ledger, order_id)
    if state is None:
        raise UnknownOrder(order_id)
    return state


def _units(lines: list[StockLine]) -> list[tuple[str, int]]:
    return sorted((line.sku, line.quantity) for line in lines)
