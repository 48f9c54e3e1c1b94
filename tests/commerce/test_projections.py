"""Read models: an order's timeline, orders by status, products; all rebuildable from events."""

from __future__ import annotations

import pytest
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    deliver,
    event_types,
    stock,
    tables,
)

from commerce import Coupon, Shop

pytestmark = pytest.mark.both_backends


def test_timeline_lists_the_orders_events_in_order(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    stocked.fail_payment("o1", reason="no funds")
    deliver(stocked, body_for(stocked, "o1", "payment_intent.succeeded", event_id="evt_1"))
    timeline = stocked.order("o1").timeline
    assert [e.event for e in timeline] == [
        "OrderPlaced",
        "StockReserved",
        "PaymentIntentCreated",
        "PaymentFailed",
        "PaymentReceived",
        "StockCommitted",
        "OrderFulfilled",
    ]
    positions = [e.position for e in timeline]
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert timeline[3].detail["reason"] == "no funds"
    assert timeline[4].detail["event_id"] == "evt_1"
    assert timeline[1].detail["lines"] == [{"sku": "MUG", "quantity": 1}]
    assert all("order_id" not in e.detail for e in timeline)
    assert all(e.at for e in timeline)


def test_timelines_do_not_mix_orders(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    stocked.start_order([("TEE", 1)], order_id="o2")
    stocked.cancel_order("o2")
    assert event_types(stocked, "o1") == ["OrderPlaced", "StockReserved", "PaymentIntentCreated"]
    assert event_types(stocked, "o2")[-1] == "OrderClosed"


def test_orders_filter_by_status(stocked: Shop, shop_clock: ShopClock) -> None:
    for i in range(5):
        stocked.start_order([("MUG", 1)], order_id=f"o{i}")
    stocked.settle("o0")
    stocked.cancel_order("o1")
    stocked.settle("o2", amount=1)
    shop_clock.advance(1800)
    stocked.start_order([("MUG", 1)], order_id="o9")  # placed later: not yet due
    stocked.fire_timers()
    expected = {
        "fulfilled": ["o0"],
        "cancelled": ["o1"],
        "needs_review": ["o2"],
        "expired": ["o3", "o4"],
        "awaiting_payment": ["o9"],
        "refunded": [],
    }
    for status, ids in expected.items():
        assert [r.order_id for r in stocked.orders(status)] == ids, status
    assert [r.order_id for r in stocked.orders()] == ["o0", "o1", "o2", "o3", "o4", "o9"]
    assert stocked.orders("no-such-status") == []


def test_order_row_fields(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    row = stocked.orders()[0]
    assert (row.order_id, row.currency, row.total, row.paid, row.refunded) == (
        "o1",
        "EUR",
        2500,
        0,
        0,
    )
    assert row.total_text
    assert row.placed_at.utcoffset() is not None


def test_products_reflect_stock_through_a_lifecycle(stocked: Shop, shop_clock: ShopClock) -> None:
    assert stock(stocked, "MUG") == (10, 0, 0)
    stocked.start_order([("MUG", 3)], order_id="o1")
    assert stock(stocked, "MUG") == (7, 3, 0)
    stocked.start_order([("MUG", 2)], order_id="o2")
    assert stock(stocked, "MUG") == (5, 5, 0)
    stocked.settle("o1")
    assert stock(stocked, "MUG") == (5, 2, 3)
    stocked.cancel_order("o2")
    assert stock(stocked, "MUG") == (7, 0, 3)
    stocked.restock("MUG", 1)
    assert stock(stocked, "MUG") == (8, 0, 3)
    check_all(stocked)


def test_rebuild_reproduces_every_table_after_a_mixed_history(
    stocked: Shop, shop_clock: ShopClock
) -> None:
    stocked.add_coupon(Coupon(code="TEN", percent_off_bp=1000))
    stocked.start_order([("MUG", 1)], order_id="o1", coupon="TEN")
    stocked.start_order([("TEE", 2)], order_id="o2")
    stocked.start_order([("MUG", 2)], order_id="o3")
    stocked.settle("o1")
    deliver(stocked, body_for(stocked, "o2", "payment_intent.payment_failed", event_id="evt_f"))
    deliver(stocked, body_for(stocked, "o2", "payment_intent.succeeded", event_id="evt_f"))
    stocked.cancel_order("o3")
    stocked.settle("o3")  # late: refunded
    shop_clock.advance(1800)
    stocked.fire_timers()
    before = tables(stocked)
    assert before["webhooks"] and before["payment_intents"] and before["coupons"]
    check_all(stocked)
    assert tables(stocked) == before


@pytest.mark.parametrize("table", ["products", "orders", "payment_intents", "webhooks"])
def test_a_projection_row_edited_behind_the_ledger_fails_verify(stocked: Shop, table: str) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    stocked.settle("o1")
    column = {
        "products": "name",
        "orders": "status",
        "payment_intents": "status",
        "webhooks": "outcome",
    }[table]
    with stocked.ledger.transaction():
        stocked.ledger.query(f"UPDATE {table} SET {column} = 'tampered'")
    assert not stocked.ledger.verify().ok
    stocked.ledger.rebuild()
    assert stocked.ledger.verify().ok
    assert stocked.order("o1").order.status == "fulfilled"
