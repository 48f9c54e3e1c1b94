"""Model-based test of the whole library: a hypothesis state machine over `commerce.Shop`.

The machine drives a real SQLite file with a hand-moved clock and the fake provider, and
keeps a small model of what each order, payment intent and SKU must be. After every step
the shop must agree with the model and keep every system invariant (see
`reliability_helpers.check_invariants`), and the ledger may only have grown.

"move" exports the orders still awaiting payment into a fresh file and checks that file
(stock they hold, their statuses, verify); the machine then goes on with the original.
"move and retire" does the same, then finishes the move: those orders end here as
`moved`, their stock leaves with them, and their later webhooks are ignored here.

Issue 11's rules: a person reviews held payments (accept or refund), holds expire, the
provider also reports payments as `charge.succeeded` and `checkout.session.completed`
(deduplicated per intent), and a bad deploy parks payments until the flow is resumed. A
payment event for an order with parked ones is parked behind them (it never overtakes
them); applying them reports each, with the status it left the order in.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from broken_deploy import deployed_broken_code
from hypothesis import event as note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from reliability_helpers import (
    SECRET,
    Clock,
    charge_body,
    check_invariants,
    checkout_body,
    event_body,
    intent_of,
)

from commerce import (
    BadSignature,
    Coupon,
    CouponRejected,
    FakeProvider,
    InvalidTransition,
    Money,
    OutOfStock,
    PaymentIntent,
    SettleResult,
    Shop,
    ShopConfig,
    sign,
)

SKUS = ("APL", "BRD", "CHS")
PRICES = {"APL": 250, "BRD": 399, "CHS": 1299}
TIMEOUT = 600
REVIEW_TIMEOUT = 1800
CONFIG = ShopConfig(payment_timeout_seconds=TIMEOUT, review_timeout_seconds=REVIEW_TIMEOUT)
KINDS = ["ok", "ok", "short", "fail", "refund", "charge", "checkout"]
SUCCEEDED, FAILED, REFUNDED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)


@dataclass
class ModelOrder:
    """What the model expects of one order."""

    order_id: str
    lines: dict[str, int]
    total: int
    intent: PaymentIntent
    deadline: float
    status: str = "awaiting_payment"
    intent_status: str = "open"  # open -> succeeded -> refunded
    paid: int = 0
    refunded: int = 0
    held_at: float = 0.0  # when it was held for review


@dataclass
class PendingEvent:
    """A provider event the fake provider has "sent" and may deliver (again)."""

    event_id: str
    order_id: str
    kind: str
    amount: int
    body: bytes
    delivered: bool = False
    parked: bool = False


@dataclass
class Model:
    restocked: dict[str, int] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)
    reserved: dict[str, int] = field(default_factory=dict)
    sold: dict[str, int] = field(default_factory=dict)
    orders: dict[str, ModelOrder] = field(default_factory=dict)
    events: list[PendingEvent] = field(default_factory=list)


def _move_stock(model: Model, lines: dict[str, int], source: str, target: str) -> None:
    for sku, quantity in lines.items():
        getattr(model, source)[sku] -= quantity
        getattr(model, target)[sku] += quantity


class ShopMachine(RuleBasedStateMachine):
    """Restock, order, pay (in any order, twice, forged), cancel, time out, restart, move."""

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="orderflow-model-")
        self.path = Path(self._dir.name) / "shop.db"
        self.clock = Clock()
        self.shop = self._open(self.path)
        self.model = Model()
        self.chain: list[tuple[int, str]] = []
        self.counter = 0

    def _open(self, path: Path) -> Shop:
        return Shop.open(
            path, synchronous="NORMAL", clock=self.clock, provider=FakeProvider(), config=CONFIG
        )

    def teardown(self) -> None:
        self.shop.close()
        self._dir.cleanup()

    def _next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter:04d}"

    @initialize(stocks=st.tuples(*(st.integers(2, 9) for _ in SKUS)))
    def catalog(self, stocks: tuple[int, ...]) -> None:
        for sku, stock in zip(SKUS, stocks, strict=True):
            self.shop.add_product(sku, sku.title(), Money(PRICES[sku], "EUR"), stock=stock)
            m = self.model
            m.restocked[sku], m.available[sku], m.reserved[sku], m.sold[sku] = stock, stock, 0, 0
        self.shop.add_coupon(Coupon(code="TENOFF", percent_off_bp=1000))

    # -- catalog and orders ------------------------------------------------------------

    @rule(sku=st.sampled_from(SKUS), quantity=st.integers(1, 5))
    def restock(self, sku: str, quantity: int) -> None:
        self.shop.restock(sku, quantity)
        self.model.restocked[sku] += quantity
        self.model.available[sku] += quantity

    @rule(
        lines=st.dictionaries(st.sampled_from(SKUS), st.integers(1, 3), min_size=1, max_size=3),
        coupon=st.sampled_from([None, None, "TENOFF", "NOSUCH"]),
    )
    def start_order(self, lines: dict[str, int], coupon: str | None) -> None:
        head = self.shop.ledger.head()
        order_id = self._next_id("ord")
        short = [sku for sku, q in lines.items() if q > self.model.available[sku]]
        if coupon == "NOSUCH" or short:
            error = CouponRejected if coupon == "NOSUCH" else OutOfStock
            with pytest.raises(error):
                self.shop.start_order(list(lines.items()), coupon=coupon, order_id=order_id)
            assert self.shop.ledger.head() == head, "a refused order wrote to the ledger"
            return
        view = self.shop.start_order(list(lines.items()), coupon=coupon, order_id=order_id)
        assert view.order.status == "awaiting_payment"
        subtotal = sum(PRICES[sku] * q for sku, q in lines.items())
        discount = (2 * subtotal * 1000 + 10_000) // 20_000 if coupon else 0
        assert view.order.total == subtotal - discount
        _move_stock(self.model, lines, "available", "reserved")
        self.model.orders[order_id] = ModelOrder(
            order_id=order_id,
            lines=dict(lines),
            total=view.order.total,
            intent=intent_of(self.shop, order_id),
            deadline=self.clock.now.timestamp() + TIMEOUT,
        )

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        order = data.draw(st.sampled_from(sorted(self.model.orders.values(), key=_key)))
        if order.status == "cancelled":  # a repeat changes nothing, and says so
            head = self.shop.ledger.head()
            assert self.shop.cancel_order(order.order_id).order.status == "cancelled"
            assert self.shop.ledger.head() == head
            return
        if order.status != "awaiting_payment":
            head = self.shop.ledger.head()
            with pytest.raises(InvalidTransition):
                self.shop.cancel_order(order.order_id)
            assert self.shop.ledger.head() == head
            return
        assert self.shop.cancel_order(order.order_id).order.status == "cancelled"
        order.status = "cancelled"
        _move_stock(self.model, order.lines, "reserved", "available")

    # -- the provider's events ---------------------------------------------------------

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), kind=st.sampled_from(KINDS))
    def provider_sends(self, data: st.DataObject, kind: str) -> None:
        """The provider emits an event about a known intent (a refund only after a payment)."""
        self._send(data.draw(st.sampled_from(sorted(self.model.orders.values(), key=_key))), kind)

    def _send(self, order: ModelOrder, kind: str) -> None:
        intent, amount = order.intent, order.total
        if kind == "refund":
            paid = [e for e in self.model.events if e.order_id == order.order_id]
            if not any(e.kind == SUCCEEDED for e in paid):
                return
            event_kind = REFUNDED
        elif kind == "short":
            if order.total < 2:
                return
            amount = order.total - 1
            intent = PaymentIntent(
                intent_id=intent.intent_id,
                order_id=order.order_id,
                amount=amount,
                currency=intent.currency,
            )
            event_kind = SUCCEEDED
        else:
            event_kind = FAILED if kind == "fail" else SUCCEEDED
        event_id = self._next_id("evt")
        make = {"charge": charge_body, "checkout": checkout_body}.get(kind)
        if make is not None:
            body = make(intent, event_id, self.clock.unix)
        else:
            body = event_body(intent, event_kind, event_id, self.clock.unix)
        self.model.events.append(PendingEvent(event_id, order.order_id, event_kind, amount, body))

    @precondition(lambda self: self.model.orders)
    @rule(data=st.data(), kind=st.sampled_from(KINDS))
    def provider_sends_and_delivers(self, data: st.DataObject, kind: str) -> None:
        """The usual case: the provider sends an event and it arrives at once."""
        sent = len(self.model.events)
        self.provider_sends(data, kind)
        if len(self.model.events) > sent:
            self._deliver(self.model.events[-1], 1)

    @precondition(lambda self: self.model.events)
    @rule(data=st.data(), times=st.integers(1, 2))
    def deliver(self, data: st.DataObject, times: int) -> None:
        """Deliver any sent event (so out of order), once or twice in a row."""
        self._deliver(data.draw(st.sampled_from(self.model.events)), times)

    def _deliver(self, event: PendingEvent, times: int) -> None:
        for _ in range(times):
            header = sign(event.body, SECRET, self.clock.unix)
            result = self.shop.settle_webhook(event.body, header, secret=SECRET)
            event_note = f"{event.kind} to {self.model.orders[event.order_id].status}"
            note(f"deliver {event_note}: {result.outcome}")
            if event.delivered:
                assert result.outcome == "already_settled", result
            elif self._parked_ahead(event):  # a later payment never overtakes a parked one
                assert result.outcome == "recorded" and "parked" in result.reason, result
                event.delivered = event.parked = True
            else:
                self._apply(event, result.outcome)
                event.delivered = True
            order = self.model.orders[event.order_id]
            assert result.order_id == event.order_id
            assert result.order_status == order.status, (result, order)

    @precondition(lambda self: self.model.events)
    @rule(data=st.data(), forgery=st.sampled_from(["secret", "tamper", "missing", "stale"]))
    def deliver_forged(self, data: st.DataObject, forgery: str) -> None:
        """A badly signed delivery raises `BadSignature` and writes nothing."""
        event = data.draw(st.sampled_from(self.model.events))
        body, header = event.body, sign(event.body, SECRET, self.clock.unix)
        if forgery == "secret":
            header = sign(body, "whsec_wrong", self.clock.unix)
        elif forgery == "tamper":
            body = body.replace(b"{", b"{ ", 1)  # any change to the signed bytes
        elif forgery == "missing":
            header = None
        else:
            header = sign(body, SECRET, self.clock.unix - 301)
        head, count = self.shop.ledger.head(), self.shop.ledger.count()
        with pytest.raises(BadSignature):
            self.shop.settle_webhook(body, header, secret=SECRET)
        assert (self.shop.ledger.head(), self.shop.ledger.count()) == (head, count)

    def _parked_ahead(self, event: PendingEvent) -> bool:
        """Whether a payment event for the same (not moved) order waits parked before it."""
        if event.kind == REFUNDED or self.model.orders[event.order_id].status == "moved":
            return False
        return any(e.parked and e.order_id == event.order_id for e in self.model.events)

    def _apply(self, event: PendingEvent, outcome: str) -> None:
        """The model's version of settling one event for the first time."""
        order = self.model.orders[event.order_id]
        if order.status == "moved":  # its events belong to the ledger it moved to
            assert outcome == "ignored", (outcome, order)
            return
        if event.kind == REFUNDED:
            if order.intent_status == "refunded" or order.refunded >= order.total:
                assert outcome == "ignored", (outcome, order)
                return
            # A refund before the payment is recorded, not "refunded": nothing was paid yet.
            assert outcome == ("recorded" if order.intent_status == "open" else "refunded")
            order.refunded = order.total
            if order.intent_status != "open":  # a refund before the payment leaves it open
                order.intent_status = "refunded"
            if order.status == "needs_review":  # the held stock is released with it
                _move_stock(self.model, order.lines, "reserved", "available")
            if order.status in ("fulfilled", "needs_review", "refunded"):
                order.status = "refunded"
            return
        if order.intent_status != "open":
            assert outcome == ("already_settled" if event.kind == SUCCEEDED else "ignored")
            return
        if event.kind == FAILED:
            assert outcome == ("recorded" if order.status == "awaiting_payment" else "ignored")
            return
        if order.refunded >= event.amount:  # the refund came first: cancel, keep it refunded
            assert outcome == "refunded", (outcome, order)
            if order.status == "awaiting_payment":
                _move_stock(self.model, order.lines, "reserved", "available")
            order.paid, order.intent_status, order.status = event.amount, "refunded", "refunded"
            return
        order.paid, order.intent_status = event.amount, "succeeded"
        if order.status == "awaiting_payment":
            if event.amount == order.total:
                assert outcome == "settled", outcome
                order.status = "fulfilled"
                _move_stock(self.model, order.lines, "reserved", "sold")
            else:
                assert outcome == "recorded", outcome
                order.status, order.held_at = "needs_review", self.clock.now.timestamp()
            return
        assert outcome == "refunded", (outcome, order)  # a late payment is given back
        order.status, order.intent_status = "refunded", "refunded"
        order.refunded += event.amount

    # -- time, restarts, moves, rebuilds ----------------------------------------------

    @rule(seconds=st.sampled_from([1, 60, 300, 599, 600, 601, 1200, 1800]))
    def advance_clock_and_fire(self, seconds: int) -> None:
        now = self.clock.advance(seconds).timestamp()
        self._applied(self.shop.apply_parked())  # what `fire_timers` does first
        self.shop.fire_timers()
        for order in self.model.orders.values():
            if order.status == "awaiting_payment" and order.deadline <= now:
                order.status = "expired"
                _move_stock(self.model, order.lines, "reserved", "available")
            elif order.status == "needs_review" and order.held_at + REVIEW_TIMEOUT <= now:
                self._refund_held(order)  # the hold expired: refunded, stock released

    # -- people: reviews, bad deploys and their fix --------------------------------------

    @precondition(lambda self: any(o.status == "needs_review" for o in self.model.orders.values()))
    @rule(data=st.data(), decision=st.sampled_from(["accept", "refund"]))
    def review(self, data: st.DataObject, decision: str) -> None:
        held = [o for o in self.model.orders.values() if o.status == "needs_review"]
        order = data.draw(st.sampled_from(sorted(held, key=_key)))
        view = self.shop.review(order.order_id, decision)  # type: ignore[arg-type]
        if decision == "accept":
            order.status = "fulfilled"
            _move_stock(self.model, order.lines, "reserved", "sold")
        else:
            self._refund_held(order)
        assert view.order.status == order.status

    def _refund_held(self, order: ModelOrder) -> None:
        order.status, order.intent_status = "refunded", "refunded"
        order.refunded = order.paid
        _move_stock(self.model, order.lines, "reserved", "available")

    @precondition(lambda self: any(_awaiting(self.model)))
    @rule(data=st.data(), kind=st.sampled_from(["ok", "fail", "checkout"]))
    def pay_during_a_bad_deploy(self, data: st.DataObject, kind: str) -> None:
        """A deploy breaks the order flow: the payment is parked, the flow stuck, until fixed."""
        order = data.draw(st.sampled_from(sorted(_awaiting(self.model), key=_key)))
        sent = len(self.model.events)
        self._send(order, kind)
        if len(self.model.events) == sent:
            return
        event = self.model.events[-1]
        with deployed_broken_code():
            header = sign(event.body, SECRET, self.clock.unix)
            result = self.shop.settle_webhook(event.body, header, secret=SECRET)
        assert result.outcome == "recorded" and "parked" in result.reason, result
        event.delivered = event.parked = True

    @precondition(lambda self: any(e.parked for e in self.model.events))
    @rule()
    def resume_stuck_flows(self) -> None:
        """After the fix: `flows resume --all-stuck` applies every payment it parked."""
        for row in self.shop.engine.flows("stuck"):
            state, applied = self.shop.resume_flow(row.flow_id)
            assert state.status != "stuck"
            self._applied(applied)

    def _applied(self, results: list[SettleResult]) -> None:
        for result in results:
            (event,) = [e for e in self.model.events if e.event_id == result.event_id]
            assert event.parked, event
            self._apply(event, result.outcome)
            event.parked = False
            assert result.order_status == self.model.orders[event.order_id].status

    @rule()
    def restart(self) -> None:
        """Close and reopen the file: no cache, no provider memory survives."""
        self.shop.close()
        self.shop = self._open(self.path)

    @rule()
    def rebuild_projections(self) -> None:
        before = (self.shop.products(), self.shop.orders(), self.shop.engine.flows())
        self.shop.ledger.rebuild()
        assert (self.shop.products(), self.shop.orders(), self.shop.engine.flows()) == before

    def _waiting(self) -> list[ModelOrder]:
        """Orders awaiting payment whose flow waits (a stuck one is not exported)."""
        engine = self.shop.engine
        return [o for o in _awaiting(self.model) if engine.status(o.order_id).status == "waiting"]

    @rule()
    def move_waiting_orders(self) -> None:
        """Export the orders awaiting payment into a fresh file; they arrive intact there."""
        waiting = {o.order_id: o for o in self._waiting()}
        document = self.shop.export_flows(status="waiting")
        target = Path(self._dir.name) / f"moved-{self._next_id('mv')}.db"
        with self._open(target) as moved:
            moved.import_flows(document)
            check_invariants(moved)
            assert {row.order_id for row in moved.orders()} == set(waiting)
            for order_id in waiting:
                assert moved.order(order_id).order == self.shop.order(order_id).order
                assert moved.engine.status(order_id).status == "waiting"
            for product in moved.products():
                held = sum(o.lines.get(product.sku, 0) for o in waiting.values())
                assert (product.available, product.reserved, product.sold) == (0, held, 0)
        target.unlink()

    @rule()
    def move_and_retire_waiting_orders(self) -> None:
        """A whole move: export, import into a fresh file, then retire them here."""
        waiting = self._waiting()
        document = self.shop.export_flows(status="waiting")
        target = Path(self._dir.name) / f"moved-{self._next_id('mv')}.db"
        with self._open(target) as moved:
            receipt = moved.import_flows(document).receipt
            check_invariants(moved)
        target.unlink()
        retired = self.shop.retire_moved(document, receipt=receipt)
        assert sorted(retired) == sorted(o.order_id for o in waiting)
        for order in waiting:
            order.status = "moved"
            for sku, quantity in order.lines.items():
                self.model.reserved[sku] -= quantity  # the stock left with the order
        assert self.shop.retire_moved(document, receipt=receipt) == []  # a repeat: no change

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        if not self.model.restocked:
            return
        for product in self.shop.products():
            m = self.model
            sku = product.sku
            expected = (m.available[sku], m.reserved[sku], m.sold[sku])
            assert (product.available, product.reserved, product.sold) == expected, product
        for order in self.model.orders.values():
            row = self.shop.order(order.order_id).order
            assert (row.status, row.paid, row.refunded) == (
                order.status,
                order.paid,
                order.refunded,
            ), (row, order)

    @invariant()
    def system_invariants(self) -> None:
        facts = check_invariants(self.shop)
        assert facts.chain[: len(self.chain)] == self.chain, "an earlier event changed"
        assert len(facts.chain) >= len(self.chain)
        self.chain = facts.chain


def _key(order: ModelOrder) -> str:
    return order.order_id


def _awaiting(model: Model) -> list[ModelOrder]:
    return [o for o in model.orders.values() if o.status == "awaiting_payment"]


TestShopMachine = ShopMachine.TestCase
