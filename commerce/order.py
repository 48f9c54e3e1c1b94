"""An order's standing as a pure fold over its events: `evolve(state, event) -> state`.

The status rules live here, in Python, not in SQL: the commerce projection stores what
`evolve` gives (the `orders` row's status, paid, refunded and intent, and each payment
intent's status), and the settler computes from it the status a step left an order in.
Events can arrive out of order from a provider (a refund reported before its payment):
the rules take what was already recorded into account.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import assert_never

import msgspec

from commerce.events import (
    OrderClosed,
    OrderFulfilled,
    OrderMovedOut,
    OrderPlaced,
    PaymentDisputed,
    PaymentIntentAdopted,
    PaymentIntentCreated,
    PaymentReceived,
    RefundIssued,
    RefundRecorded,
)

OrderEvent = (
    OrderPlaced
    | PaymentIntentCreated
    | PaymentIntentAdopted
    | PaymentReceived
    | OrderFulfilled
    | PaymentDisputed
    | OrderClosed
    | OrderMovedOut
    | RefundIssued
    | RefundRecorded
)
ORDER_EVENTS: tuple[type[OrderEvent], ...] = OrderEvent.__args__
"""The events `evolve` folds: every one that changes an order's row or an intent's status."""

_CLOSED = ("expired", "cancelled", "failed")  # a payment after these is refunded by a flow
_replace = msgspec.structs.replace
_REFUNDABLE = ("fulfilled", "needs_review", "refunded", "partially_refunded")  # i.e. was paid


class IntentState(msgspec.Struct, frozen=True):
    """One payment intent of the order: what it asks for, and how far it got."""

    amount: int
    status: str = "open"  # open -> succeeded -> partially_refunded / refunded


class OrderState(msgspec.Struct, frozen=True, kw_only=True):
    """An order's status and money, and the status of each intent `evolve` has seen.

    `intents` holds only the intents the fold knows (a projection reads those its events
    name); an event about another intent changes no intent.
    """

    status: str = "placed"
    paid: int = 0
    refunded: int = 0
    intent_id: str | None = None  # the intent orderflow created for it (not adopted ones)
    intents: dict[str, IntentState] = {}


def evolve(state: OrderState, event: OrderEvent) -> OrderState:
    """The order's state after `event` (pure: the same inputs give the same state)."""
    match event:
        case OrderPlaced():
            return OrderState(intents=state.intents)  # intents are rows of their own
        case PaymentIntentCreated():
            opened = _intent(state, event.intent_id, IntentState(event.amount))
            return _replace(opened, status="awaiting_payment", intent_id=event.intent_id)
        case PaymentIntentAdopted():
            return _intent(state, event.intent_id, IntentState(event.amount))
        case PaymentReceived():
            return _paid(state, event)
        case OrderFulfilled():
            return _replace(state, status=_fulfilled(state.refunded))
        case PaymentDisputed():
            return _replace(state, status="needs_review")
        case OrderClosed():
            return _replace(state, status=event.status)
        case OrderMovedOut():
            return _replace(state, status="moved")
        case RefundIssued():
            refunded = _replace(state, status="refunded", refunded=state.refunded + event.amount)
            return _intent_status(refunded, event.intent_id, "refunded")
        case RefundRecorded():
            return _refund_recorded(state, event)
        case _:
            assert_never(event)


def fold(events: Iterable[OrderEvent], state: OrderState | None = None) -> OrderState:
    """`evolve` over `events`, from `state` (else a new order's)."""
    current = state or OrderState()
    for event in events:
        current = evolve(current, event)
    return current


def _paid(state: OrderState, event: PaymentReceived) -> OrderState:
    # A refund may have come first (events out of order): a closed order refunded at least
    # what it was paid is refunded, and the intent shows what was already given back.
    paid = state.paid + event.amount
    status = state.status
    if status in _CLOSED and state.refunded >= paid:
        status = "refunded"
    paid_state = _replace(state, paid=paid, status=status)
    intent = state.intents.get(event.intent_id)
    if intent is None:
        return paid_state
    if state.refunded >= intent.amount:
        return _intent_status(paid_state, event.intent_id, "refunded")
    return _intent_status(paid_state, event.intent_id, _fulfilled(state.refunded, "succeeded"))


def _refund_recorded(state: OrderState, event: RefundRecorded) -> OrderState:
    # A refund reported before the payment itself leaves the intent open: the payment, when
    # it comes, is then settled knowing what was already given back.
    # A part refunded of a payment held for review leaves it held: a person still decides.
    new = "refunded" if event.full else "partially_refunded"
    status = state.status
    if status in _REFUNDABLE and not (status == "needs_review" and not event.full):
        status = new
    recorded = _replace(state, refunded=event.amount_refunded, status=status)
    intent = state.intents.get(event.intent_id)
    if intent is None or intent.status == "open":
        return recorded
    return _intent_status(recorded, event.intent_id, new)


def _fulfilled(refunded: int, otherwise: str = "fulfilled") -> str:
    """Paid and kept, less any part already given back."""
    return "partially_refunded" if refunded > 0 else otherwise


def _intent(state: OrderState, intent_id: str, intent: IntentState) -> OrderState:
    return _replace(state, intents={**state.intents, intent_id: intent})


def _intent_status(state: OrderState, intent_id: str, status: str) -> OrderState:
    intent = state.intents.get(intent_id)
    if intent is None:
        return state
    return _intent(state, intent_id, msgspec.structs.replace(intent, status=status))
