"""Shared pieces of the reliability tests: a settable clock, signing, and the invariants.

`check_invariants(shop)` reads only the ledger and its projections, so it works the same
on a shop that was just reopened after a SIGKILL, on one filled by several processes, and
on the target of a move.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from commerce import FakeProvider, PaymentIntent, Shop, sign
from commerce.events import (
    AnyCommerceEvent,
    OrderFulfilled,
    OrderMovedOut,
    PaymentReceived,
    RefundIssued,
    Restocked,
    ReviewResolved,
    StockCommitted,
    StockReleased,
    StockRemoved,
    StockReserved,
    WebhookReceived,
)

SECRET = "whsec_reliability"
T0 = datetime(2030, 1, 1, tzinfo=UTC)
CLOSING = {"running", "waiting"}
"""A closed order's flow still cancelling its intent at the provider (in flight, or retried)."""
FLOW_STATUS = {
    "awaiting_payment": {"waiting", "stuck"},  # stuck: a bad deploy, until it is resumed
    "fulfilled": {"completed"},
    "expired": {"completed", *CLOSING},
    "failed": {"completed"},
    "cancelled": {"cancelled", *CLOSING},
    # A payment after a cancel is kept and given back by a separate late-payment flow, so
    # the order's own flow stays cancelled while the order ends refunded (or needs review).
    "needs_review": {"completed", "cancelled", *CLOSING},
    "refunded": {"completed", "cancelled", *CLOSING},
    "partially_refunded": {"completed", "cancelled"},
    "moved": {"moved"},
}
PAID_STATUSES = ("fulfilled", "refunded", "partially_refunded", "needs_review")
HOLDING_STATUSES = ("placed", "awaiting_payment", "needs_review")
"""The only statuses in which an order may hold reserved stock."""
_decode = msgspec.json.Decoder(AnyCommerceEvent).decode
_COMMERCE = ("sku:", "order:", "coupon:", "webhook:")


class Clock:
    """A clock the test moves by hand (callable, like `flowlib.utc_now`)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    @property
    def unix(self) -> int:
        return int(self.now.timestamp())


def signed(body: bytes, clock: Clock, secret: str = SECRET) -> tuple[bytes, str]:
    """`body` with a valid `Stripe-Signature` header at the clock's time."""
    return body, sign(body, secret, clock.unix)


def intent_of(shop: Shop, order_id: str) -> PaymentIntent:
    """The payment intent of an order, rebuilt from its row (no provider state needed)."""
    row = shop.order(order_id).order
    assert row.intent_id is not None, f"order {order_id} has no payment intent"
    return PaymentIntent(
        intent_id=row.intent_id, order_id=order_id, amount=row.total, currency=row.currency
    )


def event_body(intent: PaymentIntent, kind: str, event_id: str, created: int) -> bytes:
    """A provider event body (FakeProvider's format)."""
    return FakeProvider.event_for(intent, kind, event_id=event_id, created=created)


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes (and of its WAL, if any), for "nothing was written"."""
    digest = hashlib.sha256(path.read_bytes())
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        digest.update(wal.read_bytes())
    return digest.hexdigest()


@dataclass
class LedgerFacts:
    """What the ledger's events say, counted per order, SKU and webhook."""

    restocked: Counter[str] = field(default_factory=Counter)  # less StockRemoved
    fulfilled: Counter[str] = field(default_factory=Counter)
    received: dict[str, list[PaymentReceived]] = field(default_factory=lambda: defaultdict(list))
    refunds_issued: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    held: Counter[str] = field(default_factory=Counter)  # units each order holds reserved
    accepted: set[str] = field(default_factory=set)  # orders whose held payment a person accepted
    chain: list[tuple[int, str]] = field(default_factory=list)


def ledger_facts(shop: Shop) -> LedgerFacts:
    """Walk every event once and count what the invariants need."""
    facts = LedgerFacts()
    for record in shop.ledger.read_all():
        facts.chain.append((record.position, record.hash))
        if not record.stream.startswith(_COMMERCE):
            continue
        event = _decode(record.data)
        match event:
            case Restocked():
                facts.restocked[event.sku] += event.quantity
            case StockRemoved():
                facts.restocked[event.sku] -= event.quantity
            case OrderMovedOut():
                for line in event.lines:
                    facts.restocked[line.sku] -= line.quantity
                    facts.held[event.order_id] -= line.quantity
            case StockReserved():
                facts.held[event.order_id] += sum(line.quantity for line in event.lines)
            case StockReleased() | StockCommitted():
                facts.held[event.order_id] -= sum(line.quantity for line in event.lines)
            case OrderFulfilled():
                facts.fulfilled[event.order_id] += 1
            case PaymentReceived():
                facts.received[event.order_id].append(event)
            case ReviewResolved(decision="accept"):
                facts.accepted.add(event.order_id)
            case RefundIssued():
                facts.refunds_issued[event.order_id] += 1
            case WebhookReceived():
                facts.webhooks[event.event_id] += 1
            case _:
                pass
    return facts


def check_invariants(shop: Shop, *, verify: bool = True) -> LedgerFacts:
    """Assert every system invariant on `shop`; returns the facts for further checks.

    Among them: every recorded payment ends fulfilled, refunded, or in review, and no unit
    is reserved by a closed order.
    """
    # On PostgreSQL `read_all` gives the global chain, which a killed leader may have left
    # behind the projections: the facts are read once every committed event is in it.
    assert shop.ledger.sync(), "the global chain did not catch up with the commits"
    facts = ledger_facts(shop)
    for product in shop.products():
        assert min(product.available, product.reserved, product.sold) >= 0, product
        total = product.available + product.reserved + product.sold
        assert total == facts.restocked[product.sku], (product, facts.restocked[product.sku])
    assert all(n == 1 for n in facts.webhooks.values()), facts.webhooks
    orders = {row.order_id: row for row in shop.orders()}
    for order_id, n in facts.fulfilled.items():
        assert n == 1, f"order {order_id} fulfilled {n} times"
        paid = facts.received[order_id]
        row = orders[order_id]
        assert len(paid) == 1, f"order {order_id} fulfilled with payments {paid}"
        if order_id not in facts.accepted:  # only a person fulfils a payment that differs
            assert (paid[0].amount, paid[0].currency) == (row.total, row.currency), (paid, row)
    for order_id, payments in facts.received.items():
        row = orders[order_id]
        assert len(payments) == 1, f"order {order_id} took {len(payments)} payments"
        assert row.status in PAID_STATUSES, f"paid order {order_id} is {row.status}"
        assert row.paid == payments[0].amount, (row, payments)
        if row.status == "fulfilled":
            assert facts.fulfilled[order_id] == 1
        if facts.refunds_issued[order_id]:
            assert facts.fulfilled[order_id] == 0, f"order {order_id} fulfilled and refunded"
    for row in orders.values():
        held = facts.held[row.order_id]
        assert held >= 0, f"order {row.order_id} released more than it held"
        if row.status not in HOLDING_STATUSES:
            assert held == 0, f"order {row.order_id} is {row.status} but holds {held} unit(s)"
        if row.status == "placed":
            continue  # the provider call is in flight (only after a crash)
        flow = shop.engine.status(row.order_id).status
        assert flow in FLOW_STATUS[row.status], (row.order_id, row.status, flow)
        if flow == "cancelled" and row.status != "cancelled":
            assert row.intent_id is not None
            late = shop.engine.status(f"late:{row.intent_id}").status
            assert late == "completed", (row.order_id, row.status, late)
    if verify:
        report = shop.ledger.verify()
        assert report.ok, report
    return facts


def charge_body(intent: PaymentIntent, event_id: str, created: int) -> bytes:
    """A `charge.succeeded` about the intent (what an account subscribed to Charges gets)."""
    charge = msgspec.json.decode(event_body(intent, "charge.refunded", event_id, created))
    charge.update(type="charge.succeeded")
    charge["data"]["object"].update(amount_refunded=0, refunded=False)
    charge["data"]["object"]["amount_captured"] = intent.amount
    return msgspec.json.encode(charge)


def checkout_body(intent: PaymentIntent, event_id: str, created: int) -> bytes:
    """A paid `checkout.session.completed` about the intent (Checkout-only accounts)."""
    session = {
        "id": "cs_" + event_id,
        "object": "checkout.session",
        "mode": "payment",
        "payment_status": "paid",
        "status": "complete",
        "amount_total": intent.amount,
        "currency": intent.currency.lower(),
        "payment_intent": intent.intent_id,
        "metadata": {"order_id": intent.order_id},
    }
    event = {
        "id": event_id,
        "object": "event",
        "type": "checkout.session.completed",
        "created": created,
        "livemode": intent.livemode,
        "data": {"object": session},
    }
    return msgspec.json.encode(event)
