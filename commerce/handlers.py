"""The order flows' request handlers: each records its events in the step's transaction.

Local handlers run inside the engine's transaction, so a step and its events are written
together or not at all. The three provider calls are outside effects (`flowlib.effect`): the
engine records the request, commits, calls the provider with the step's idempotency key,
and records the answer.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

import msgspec

from commerce import readmodel
from commerce.errors import CouponRejected, OutOfStock, ProviderUnavailable, UnknownProduct
from commerce.events import (
    AnyCommerceEvent,
    CommerceEvent,
    OrderClosed,
    OrderFulfilled,
    OrderPlaced,
    PaymentDisputed,
    PaymentFailed,
    PaymentIntentCreated,
    PaymentNotice,
    PaymentReceived,
    RefundIssued,
    StockCommitted,
    StockLine,
    StockReleased,
    StockReserved,
    WebhookUnparked,
)
from commerce.money import Money
from commerce.pricing import Coupon, Line, Quote, quote
from commerce.providers.base import PaymentIntent, PaymentProvider, Refund, bounded_key
from commerce.requests import (
    CancelIntent,
    CloseOrder,
    CreatePaymentIntent,
    Fulfil,
    HoldForReview,
    IssueRefund,
    QuoteOrder,
    RecordFailedPayment,
    RecordIntent,
    RecordLatePayment,
    RecordRefund,
    ReserveStock,
    TakeParked,
)
from flowlib import Effect, Handler, StepContext, effect
from ledger import Ledger

_notice = msgspec.json.Decoder(PaymentNotice).decode


def order_stream(order_id: str) -> str:
    """The ledger stream of one order's events."""
    return f"order:{order_id}"


class OrderHandlers:
    """Handlers for every request the order flows yield, over one ledger and provider."""

    def __init__(
        self,
        ledger: Ledger,
        provider: PaymentProvider | None,
        *,
        tax_rate_bp: int = 0,
        others: Sequence[PaymentProvider] = (),
    ) -> None:
        self.ledger = ledger
        self.tax_rate_bp = tax_rate_bp
        self._journal = threading.local()  # .events: what `recording` collects on this thread
        self.provider: PaymentProvider | None = None
        self.providers: dict[str, PaymentProvider] = {}
        self.use(provider, others=others)

    def use(
        self, provider: PaymentProvider | None, *, others: Sequence[PaymentProvider] = ()
    ) -> None:
        """Create new intents through `provider`; `others` (and earlier ones) serve their own."""
        chosen = () if provider is None else (provider,)
        self.providers.update({p.name: p for p in (*others, *chosen)})
        self.provider = provider

    def provider_of(self, order_id: str, intent_id: str) -> PaymentProvider:
        """The provider that took `intent_id` (recorded with it), else the shop's own.

        An intent we did not create (adopted from a webhook) goes to the shop's provider.
        A recorded provider this process was not given is `ProviderUnavailable`: retried,
        so configuring it lets the refund (or cancel) through instead of losing it.
        """
        name = self.provider.name if self.provider is not None else None
        for event in self.ledger.read(order_stream(order_id), AnyCommerceEvent):
            if isinstance(event, PaymentIntentCreated) and event.intent_id == intent_id:
                name = event.provider
        found = self.providers.get(name) if name is not None else None
        if found is None:
            whose = f"provider {name!r}" if name else "no recorded provider"
            raise ProviderUnavailable(
                f"intent {intent_id} belongs to {whose}, not configured here",
                code="provider_not_configured",
            )
        return found

    def table(self) -> dict[type, Handler | Effect]:
        """The handler map an `Engine` takes."""
        return {
            QuoteOrder: self.quote_order,
            ReserveStock: self.reserve_stock,
            CreatePaymentIntent: effect(self.create_intent),
            RecordIntent: self.record_intent,
            CancelIntent: effect(self.cancel_intent),
            TakeParked: self.take_parked,
            RecordFailedPayment: self.record_failed_payment,
            Fulfil: self.fulfil,
            HoldForReview: self.hold_for_review,
            CloseOrder: self.close_order,
            RecordLatePayment: self.record_late_payment,
            IssueRefund: effect(self.issue_refund),
            RecordRefund: self.record_refund,
        }

    def _record(
        self, order_id: str, *events: CommerceEvent, expected_version: int | None = None
    ) -> None:
        self.ledger.append(order_stream(order_id), events, expected_version=expected_version)
        journal: list[CommerceEvent] | None = getattr(self._journal, "events", None)
        if journal is not None:
            journal.extend(events)
            # A step that fails after recording is rolled back: so are its events here.
            self.ledger.after_commit(_nothing, on_rollback=lambda: _drop(journal, events))

    @contextlib.contextmanager
    def recording(self) -> Iterator[list[CommerceEvent]]:
        """The events this thread's handlers record inside the block, as they are recorded.

        The settler folds them into the order's state it read before resuming the flow,
        instead of reading the row again (see `commerce.order`).
        """
        outer = getattr(self._journal, "events", None)
        events: list[CommerceEvent] = []
        self._journal.events = events
        try:
            yield events
        finally:
            self._journal.events = outer
            if outer is not None:
                outer.extend(events)

    # -- placing ---------------------------------------------------------------------

    def quote_order(self, request: QuoteOrder, ctx: StepContext) -> Quote:
        """Price the lines from the catalog (and coupon) and record the order as placed."""
        lines = [self._priced(line) for line in request.lines]
        coupon = self._coupon(request.coupon) if request.coupon else None
        priced = quote(lines, coupon=coupon, tax_rate_bp=self.tax_rate_bp, now=ctx.now)
        placed = OrderPlaced(order_id=request.order_id, quote=priced, placed_at=ctx.now)
        # An order's stream begins with its flow's first step: expecting it empty costs no
        # probe, and a stream already there (never made by orderflow) refuses the order.
        self._record(request.order_id, placed, expected_version=0)
        return priced

    def _priced(self, line: StockLine) -> Line:
        price = readmodel.price(self.ledger, line.sku)
        if price is None:
            raise UnknownProduct(line.sku)
        unit_price, currency = price
        return Line(sku=line.sku, quantity=line.quantity, unit_price=unit_price, currency=currency)

    def _coupon(self, code: str) -> Coupon:
        found = readmodel.coupon(self.ledger, code)
        if found is None:
            raise CouponRejected(code, "no such coupon")
        return found

    def reserve_stock(self, request: ReserveStock, ctx: StepContext) -> None:
        """Hold every line's stock, or raise `OutOfStock` naming each short SKU.

        The SKUs are locked first, in one sorted order (no two orders deadlock on them), so
        two orders never both take the last units.
        """
        self.ledger.lock(*sorted({f"sku:{line.sku}" for line in request.lines}))
        short = []
        for line in request.lines:
            available = readmodel.available(self.ledger, line.sku)
            if line.quantity > available:
                short.append((line.sku, line.quantity, available))
        if short:
            raise OutOfStock(short)
        self._record(
            request.order_id, StockReserved(order_id=request.order_id, lines=request.lines)
        )

    def create_intent(self, request: CreatePaymentIntent, ctx: StepContext) -> PaymentIntent:
        """Ask the provider for the order's payment intent (no transaction is open)."""
        self._outside_transaction()
        amount = Money(request.amount, request.currency)
        return self._own().create_intent(
            request.order_id, amount, idempotency_key=bounded_key(ctx.idempotency_key)
        )

    def _own(self) -> PaymentProvider:
        """The provider that takes new intents; without one, a retried `ProviderUnavailable`."""
        if self.provider is None:
            raise ProviderUnavailable(
                "this shop has no payment provider configured", code="provider_not_configured"
            )
        return self.provider

    def _outside_transaction(self) -> None:
        """Refuse a provider call while a write transaction is open: it is retried later.

        Effects run after their step commits; a caller that drove a flow from inside its own
        transaction (a webhook's settle that cancels an order) gets the call deferred to
        the retry timer rather than holding the write lock across a network call.
        """
        if self.ledger.in_transaction:
            raise ProviderUnavailable(
                "deferred: a write transaction is open; the next timers run makes the call",
                code="deferred",
            )

    def record_intent(self, request: RecordIntent, ctx: StepContext) -> None:
        """Record the intent (and what a storefront needs of it) so webhooks reach the order."""
        i = request.intent
        event = PaymentIntentCreated(
            order_id=request.order_id,
            intent_id=i.intent_id,
            amount=i.amount,
            currency=i.currency,
            provider=self._own().name,
            client_secret=i.client_secret,
            checkout_url=i.checkout_url,
        )
        self._record(request.order_id, event)

    def cancel_intent(self, request: CancelIntent, ctx: StepContext) -> str:
        """Cancel the intent at the provider that took it, so it can no longer be paid."""
        self._outside_transaction()
        key = bounded_key(ctx.idempotency_key)
        provider = self.provider_of(request.order_id, request.intent_id)
        return provider.cancel(request.intent_id, idempotency_key=key).status

    # -- paying ----------------------------------------------------------------------

    def take_parked(self, request: TakeParked, ctx: StepContext) -> list[PaymentNotice]:
        """Hand the flow the payment events that came before it waited, oldest first."""
        rows = readmodel.parked_on_intent(self.ledger, request.intent_id)
        for event_id, _ in rows:
            self._record(
                request.order_id,
                WebhookUnparked(
                    event_id=event_id, intent_id=request.intent_id, order_id=request.order_id
                ),
            )
        return [_notice(notice) for _, notice in rows]

    def record_failed_payment(self, request: RecordFailedPayment, ctx: StepContext) -> None:
        """Record a failed payment attempt."""
        n = request.notice
        self._record(
            request.order_id,
            PaymentFailed(
                order_id=request.order_id,
                intent_id=n.intent_id,
                event_id=n.event_id,
                reason=n.reason,
            ),
        )

    def fulfil(self, request: Fulfil, ctx: StepContext) -> None:
        """Record the payment, commit the reserved stock and mark the order fulfilled."""
        order_id = request.order_id
        self._record(
            order_id,
            _received(order_id, request.notice),
            StockCommitted(order_id=order_id, lines=request.lines),
            OrderFulfilled(order_id=order_id),
        )

    def hold_for_review(self, request: HoldForReview, ctx: StepContext) -> None:
        """Keep a payment that does not match, with the reservation, for a person to review."""
        order_id = request.order_id
        events = hold_events(
            order_id, request.notice, request.reason, ctx.now, record_payment=request.record_payment
        )
        self._record(order_id, *events)

    def close_order(self, request: CloseOrder, ctx: StepContext) -> None:
        """Release the reserved stock and close the order."""
        order_id = request.order_id
        self._record(
            order_id,
            StockReleased(order_id=order_id, lines=request.lines, reason=request.reason),
            OrderClosed(order_id=order_id, status=request.status, reason=request.reason),
        )

    # -- late payments ---------------------------------------------------------------

    def record_late_payment(self, request: RecordLatePayment, ctx: StepContext) -> None:
        """Record a payment that came after the order closed."""
        self._record(request.order_id, _received(request.order_id, request.notice))

    def issue_refund(self, request: IssueRefund, ctx: StepContext) -> Refund:
        """Give the money back through the provider (no transaction is open)."""
        self._outside_transaction()
        amount = Money(request.amount, request.currency)
        key = bounded_key(ctx.idempotency_key)
        provider = self.provider_of(request.order_id, request.intent_id)
        return provider.refund(request.intent_id, amount, idempotency_key=key)

    def record_refund(self, request: RecordRefund, ctx: StepContext) -> None:
        """Record the refund we issued."""
        r = request.refund
        event = RefundIssued(
            order_id=request.order_id,
            intent_id=r.intent_id,
            refund_id=r.refund_id,
            amount=r.amount,
            currency=r.currency,
            reason=request.reason,
        )
        self._record(request.order_id, event)


def _received(order_id: str, n: PaymentNotice) -> PaymentReceived:
    return PaymentReceived(
        order_id=order_id,
        intent_id=n.intent_id,
        event_id=n.event_id,
        amount=n.amount,
        currency=n.currency,
    )


def hold_events(
    order_id: str, n: PaymentNotice, reason: str, now: datetime, *, record_payment: bool = True
) -> list[CommerceEvent]:
    """The events that hold a payment for review (recording it first, unless it already is)."""
    disputed = PaymentDisputed(
        order_id=order_id,
        intent_id=n.intent_id,
        event_id=n.event_id,
        amount=n.amount,
        currency=n.currency,
        reason=reason,
        held_at=now,
    )
    return [_received(order_id, n), disputed] if record_payment else [disputed]


def _nothing() -> None:
    """The commit side of a journal entry's hook: a committed event stays recorded."""


def _drop(journal: list[CommerceEvent], events: tuple[CommerceEvent, ...]) -> None:
    """Take rolled-back `events` (these very objects) out of a `recording` journal."""
    journal[:] = [kept for kept in journal if all(kept is not gone for gone in events)]
