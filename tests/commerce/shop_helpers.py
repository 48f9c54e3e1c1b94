"""Shared kit for the commerce integration tests: a clock, signed bodies, ledger snapshots.

Named `shop_helpers` (not `helpers`) so it cannot shadow another test folder's module when
pytest puts several test directories on `sys.path`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from commerce import FakeProvider, Money, PaymentIntent, SettleResult, Shop, sign
from commerce.events import AnyCommerceEvent
from commerce.projections import CommerceProjection
from commerce.providers.base import derive_id
from commerce.requests import PROVIDER_RETRY
from flowlib import FlowState

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_test_secret"
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "payments"
STRIPE = FIXTURES / "stripe"
INTENT_SEQ = 2
"""The order flow's step that creates the payment intent: QuoteOrder 0, ReserveStock 1."""

PROJECTION_TABLES = CommerceProjection.tables
WAITING_TABLES = ("stock_unapplied", "parked_surplus")
"""What the projection holds back for events a rebuild met too early: empty in commit order."""


class LiveStandIn(FakeProvider):
    """The fake under another name, for live-mode tests: a live shop refuses the fake itself."""

    name = "live-standin"


class ShopClock:
    """A tz-aware clock that only moves when a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def ts(self) -> int:
        return int(self.now.timestamp())


def intent_id_for(order_id: str, seq: int = INTENT_SEQ) -> str:
    """The intent id the fake provider derives for the order (key `flow_id:seq`)."""
    return derive_id("pi_", f"{order_id}:{seq}")


def intent_of(shop: Shop, order_id: str) -> PaymentIntent:
    """The order's intent as the provider sees it (rebuilt from the order row if needed)."""
    row = shop.order(order_id).order
    assert row.intent_id is not None, f"order {order_id} has no intent"
    return PaymentIntent(
        intent_id=row.intent_id,
        order_id=order_id,
        amount=row.total,
        currency=row.currency,
        livemode=shop.config.livemode,
    )


def body_for(
    shop: Shop,
    order_id: str,
    kind: str,
    *,
    event_id: str,
    created: int | None = None,
    amount_refunded: int | None = None,
    **overrides: Any,
) -> bytes:
    """A Stripe-shaped event body about the order's intent (FakeProvider.event_for)."""
    intent = intent_of(shop, order_id)
    if overrides:
        intent = msgspec.structs.replace(intent, **overrides)
    return FakeProvider.event_for(
        intent,
        kind,
        event_id=event_id,
        created=created if created is not None else int(shop.clock().timestamp()),
        amount_refunded=amount_refunded,
    )


def deliver(shop: Shop, body: bytes, *, secret: str = SECRET) -> SettleResult:
    """Sign `body` now (by the shop's clock) and settle it."""
    header = sign(body, secret, int(shop.clock().timestamp()))
    return shop.settle_webhook(body, header, secret=secret)


def after_deferred_calls(shop: Shop, order_id: str = "o1") -> FlowState:
    """The order's flow once the provider calls deferred by a settle are made (timers run).

    A webhook that cancels an order does so inside its settle transaction: the cancel at
    the provider waits for the first retry (2 s), so it never holds the write lock.
    """
    shop.fire_timers(shop.clock() + timedelta(seconds=PROVIDER_RETRY.backoff_seconds))
    return shop.engine.status(order_id)


def snapshot(shop: Shop) -> tuple[tuple[int, str], int]:
    """The ledger's head and event count: equal before and after means nothing was written."""
    return shop.ledger.head(), shop.ledger.count()


def tables(shop: Shop) -> dict[str, list[tuple[Any, ...]]]:
    """Every commerce projection table's rows, sorted."""
    out = {}
    for table in PROJECTION_TABLES:
        out[table] = sorted(shop.ledger.query(f"SELECT * FROM {table}"), key=repr)
    return out


def check_ledger(shop: Shop) -> None:
    """The hash chain and projections verify, and a rebuild reproduces the tables exactly."""
    report = shop.ledger.verify()
    assert report.ok, report
    before = tables(shop)
    shop.ledger.rebuild()
    assert tables(shop) == before


def restocked(shop: Shop) -> dict[str, int]:
    """Every unit that came into the shop and did not leave it again, per SKU.

    In: `Restocked`. Out: `StockRemoved` and the lines of an `OrderMovedOut` (stock that
    moved to another ledger with its order).
    """
    totals: dict[str, int] = {}
    for event in events_of(shop, "Restocked", "sku:"):
        totals[event.sku] = totals.get(event.sku, 0) + event.quantity
    for event in events_of(shop, "StockRemoved", "sku:"):
        totals[event.sku] = totals.get(event.sku, 0) - event.quantity
    for event in events_of(shop, "OrderMovedOut", "order:"):
        for line in event.lines:
            totals[line.sku] = totals.get(line.sku, 0) - line.quantity
    return totals


def check_stock(shop: Shop) -> None:
    """available + reserved + sold == everything restocked, per SKU; nothing negative."""
    totals = restocked(shop)
    for p in shop.products():
        assert p.available >= 0 and p.reserved >= 0 and p.sold >= 0, p
        assert p.available + p.reserved + p.sold == totals.get(p.sku, 0), p


def check_all(shop: Shop) -> None:
    """Stock conserved, chain and projections verify, rebuild reproduces the tables."""
    check_stock(shop)
    for table in WAITING_TABLES:
        assert shop.ledger.query(f"SELECT * FROM {table}") == [], table
    check_ledger(shop)


def events_of(shop: Shop, type_name: str, stream_prefix: str = "") -> list[Any]:
    """Decoded commerce events of one type, in ledger order."""
    rows = shop.ledger.query(
        "SELECT data FROM events WHERE type = ? AND stream LIKE ? ORDER BY position",
        (type_name, stream_prefix + "%"),
    )
    decode = msgspec.json.Decoder(AnyCommerceEvent).decode
    return [decode(data) for (data,) in rows]


def count_events(shop: Shop, type_name: str, order_id: str | None = None) -> int:
    sql, params = "SELECT count(*) FROM events WHERE type = ?", [type_name]
    if order_id is not None:
        sql += " AND stream = ?"
        params.append(f"order:{order_id}")
    return int(shop.ledger.query(sql, params)[0][0])


def event_types(shop: Shop, order_id: str) -> list[str]:
    return [entry.event for entry in shop.order(order_id).timeline]


def stocked_shop(shop: Shop) -> dict[str, int]:
    """The standard catalog: two EUR products and one JPY product. Returns what was restocked."""
    shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=10)
    shop.add_product("TEE", "T-shirt", Money(2000, "EUR"), stock=5)
    shop.add_product("YEN", "Fan", Money(500, "JPY"), stock=3)
    return {"MUG": 10, "TEE": 5, "YEN": 3}


def mugs_ordered(shop: Shop, orders: dict[str, int]) -> dict[str, str]:
    """The standard catalog, then one order of `orders[id]` mugs each: order id -> intent id."""
    stocked_shop(shop)
    intents = {}
    for order_id, quantity in orders.items():
        row = shop.start_order([("MUG", quantity)], order_id=order_id).order
        assert row.intent_id is not None
        intents[order_id] = row.intent_id
    return intents


def rewrite(raw: bytes, **changes: Any) -> bytes:
    """A fixture body re-serialised with `changes` (dotted paths, e.g. data.object.id)."""
    doc = json.loads(raw)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = doc
        for key in parents:
            node = node[key]
        node[leaf] = value
    return json.dumps(doc).encode()


@contextmanager
def unchanged(shop: Shop) -> Iterator[None]:
    """Assert the block wrote nothing to the ledger (even when it raises)."""
    before = snapshot(shop)
    try:
        yield
    finally:
        assert snapshot(shop) == before


def stock(shop: Shop, sku: str) -> tuple[int, int, int]:
    """(available, reserved, sold) of one SKU."""
    (p,) = [p for p in shop.products() if p.sku == sku]
    return p.available, p.reserved, p.sold
