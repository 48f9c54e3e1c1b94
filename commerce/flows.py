"""The order lifecycle as flowlib flows: pure orchestration, every effect is a request.

```
order:  quote -> reserve -> payment intent -> wait for FirstOf(payment, timeout)
          succeeded, amount and currency match  -> fulfil            (completed: fulfilled)
          succeeded, mismatch                   -> hold for review   (completed: needs_review)
          failed attempt                        -> record, wait again until the timeout
          timeout                               -> release stock     (completed: expired)
          merchant cancel                       -> release stock     (cancelled)
          (expired or cancelled: then the intent is cancelled at its provider)
late payment (for an order already closed): record it, refund it    (completed: refunded)
review refund (a hold decided, or expired): refund, release stock    (completed: refunded)
```
Version 2 of the order flow fulfils a zero total at once; version 1 finishes older orders.
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import datetime, timedelta
from typing import Any

from commerce.errors import CommerceError
from commerce.events import PaymentNotice, StockLine
from commerce.money import Money
from commerce.pricing import Quote
from commerce.requests import (
    PROVIDER_RETRY,
    AwaitPayment,
    CancelIntent,
    CloseOrder,
    CreatePaymentIntent,
    Fulfil,
    HoldForReview,
    IssueRefund,
    PlaceOrder,
    QuoteOrder,
    RecordFailedPayment,
    RecordIntent,
    RecordLatePayment,
    RecordRefund,
    ReserveStock,
    TakeParked,
)
from flowlib import Cancelled, Flow, Now, Request, StepFailed, Timer, first_of, flow

ORDER_FLOW = "order"
LATE_PAYMENT_FLOW = "late-payment"
REVIEW_REFUND_FLOW = "review-refund"


@flow(ORDER_FLOW, version=1)
def order_flow_v1(order: PlaceOrder) -> Flow[str]:
    """Version 1 (orders placed before zero totals were allowed): kept to finish those."""
    return (yield from _order(order, free_path=False))


@flow(ORDER_FLOW, version=2)
def order_flow(order: PlaceOrder) -> Flow[str]:
    """One order from placement to fulfilment, expiry or cancellation; returns its status.

    A zero total (a 100%-off coupon) is fulfilled at once, recorded as paid 0, with no
    payment intent: there is nothing for the provider to collect.
    """
    return (yield from _order(order, free_path=True))


def _order(order: PlaceOrder, *, free_path: bool) -> Generator[Request[Any], Any, str]:
    order_id, lines = order.order_id, order.lines
    quote = yield QuoteOrder(order_id=order_id, lines=lines, coupon=order.coupon)
    yield ReserveStock(order_id=order_id, lines=lines)
    if free_path and quote.total == 0:
        yield Fulfil(order_id=order_id, lines=lines, notice=_free(order_id, quote))
        return "fulfilled"
    try:
        intent = yield CreatePaymentIntent(
            order_id=order_id, amount=quote.total, currency=quote.currency, retry=PROVIDER_RETRY
        )
    except Cancelled as cancel:
        yield CloseOrder(order_id=order_id, lines=lines, status="cancelled", reason=cancel.message)
        raise
    except StepFailed as failure:
        yield CloseOrder(
            order_id=order_id, lines=lines, status="failed", reason=f"payment provider: {failure}"
        )
        return "failed"
    yield RecordIntent(order_id=order_id, intent=intent)
    started: datetime = yield Now()
    deadline = started + timedelta(seconds=order.payment_timeout_seconds)
    try:
        verdict = yield from _collect_payment(order, intent.intent_id, quote, deadline)
    except Cancelled as cancel:
        yield CloseOrder(order_id=order_id, lines=lines, status="cancelled", reason=cancel.message)
        yield from _void(order_id, intent.intent_id)
        raise
    if verdict == "expired":
        yield from _void(order_id, intent.intent_id)
    return verdict


def _void(order_id: str, intent_id: str) -> Generator[Request[Any], Any, None]:
    """Cancel the closed order's intent at its provider, so the customer cannot pay it.

    Only ever after the wait (flows suspended by older code replay unchanged). A refusal
    (already paid, already cancelled) leaves the order as it is: a payment that got in
    first arrives as a webhook and is refunded as a late payment.
    """
    try:
        yield CancelIntent(order_id=order_id, intent_id=intent_id, retry=PROVIDER_RETRY)
    except Cancelled:
        raise
    except StepFailed:
        return


def _collect_payment(
    order: PlaceOrder, intent_id: str, quote: Quote, deadline: datetime
) -> Generator[Request[Any], Any, str]:
    order_id, lines = order.order_id, order.lines
    while True:
        parked: list[PaymentNotice] = yield TakeParked(order_id=order_id, intent_id=intent_id)
        for notice in parked:
            verdict = yield from _apply(order, quote, notice)
            if verdict is not None:
                return verdict
        won = yield first_of(
            AwaitPayment(order_id=order_id, intent_id=intent_id), Timer(at=deadline)
        )
        if won.index == 1:
            yield CloseOrder(
                order_id=order_id, lines=lines, status="expired", reason="payment timed out"
            )
            return "expired"
        verdict = yield from _apply(order, quote, won.value)
        if verdict is not None:
            return verdict


def _apply(
    order: PlaceOrder, quote: Quote, notice: PaymentNotice
) -> Generator[Request[Any], Any, str | None]:
    order_id = order.order_id
    if not notice.succeeded:
        yield RecordFailedPayment(order_id=order_id, notice=notice)
        return None
    if (notice.amount, notice.currency) != (quote.total, quote.currency):
        reason = f"paid {_money(notice.amount, notice.currency)}, quoted {quote.total_money}"
        yield HoldForReview(order_id=order_id, notice=notice, reason=reason)
        return "needs_review"
    yield Fulfil(order_id=order_id, lines=order.lines, notice=notice)
    return "fulfilled"


def _free(order_id: str, quote: Quote) -> PaymentNotice:
    return PaymentNotice(
        event_id=f"free:{order_id}",
        intent_id="",
        succeeded=True,
        amount=0,
        currency=quote.currency,
        reason="nothing to pay",
    )


def _money(amount: int, currency: str) -> str:
    try:
        return str(Money(amount, currency))
    except CommerceError:  # a provider's odd value is still shown, not raised
        return f"{amount} {currency}"


@flow(LATE_PAYMENT_FLOW, version=1)
def late_payment_flow(order_id: str, notice: PaymentNotice, refunded: int = 0) -> Flow[str]:
    """A payment for an order already closed: keep the record, give back what is not yet.

    `refunded` is what the provider had already given back when the payment was settled.
    """
    yield RecordLatePayment(order_id=order_id, notice=notice)
    owed = notice.amount - refunded
    if owed <= 0:
        return "refunded"
    try:
        refund = yield IssueRefund(
            order_id=order_id,
            intent_id=notice.intent_id,
            amount=owed,
            currency=notice.currency,
            retry=PROVIDER_RETRY,
        )
    except StepFailed as failure:
        reason = f"late payment kept: the refund failed ({failure})"
        yield HoldForReview(order_id=order_id, notice=notice, reason=reason, record_payment=False)
        return "needs_review"
    yield RecordRefund(
        order_id=order_id, refund=refund, reason="payment came after the order closed"
    )
    return "refunded"


@flow(REVIEW_REFUND_FLOW, version=1)
def review_refund_flow(
    order_id: str, notice: PaymentNotice, owed: int, held: list[StockLine], reason: str
) -> Flow[str]:
    """End a review hold by giving back what is `owed` and releasing the `held` stock.

    If the provider refuses the refund the payment stays held for review, with the reason.
    """
    if owed > 0:
        try:
            refund = yield IssueRefund(
                order_id=order_id,
                intent_id=notice.intent_id,
                amount=owed,
                currency=notice.currency,
                retry=PROVIDER_RETRY,
            )
        except StepFailed as failure:
            why = f"still held: the refund failed ({failure})"
            yield HoldForReview(order_id=order_id, notice=notice, reason=why, record_payment=False)
            return "needs_review"
        yield RecordRefund(order_id=order_id, refund=refund, reason=reason)
    yield CloseOrder(order_id=order_id, lines=held, status="refunded", reason=reason)
    return "refunded"
