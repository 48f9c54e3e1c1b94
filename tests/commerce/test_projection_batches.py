"""The commerce projection applied per append batch: fewer statements, the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from commerce import Shop
from commerce.events import RefundRecorded


@contextmanager
def traced(shop: Shop) -> Iterator[list[str]]:
    statements: list[str] = []
    shop.ledger.db.conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        shop.ledger.db.conn.set_trace_callback(None)


def _tables(shop: Shop) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: shop.ledger.db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
        for table in ("orders", "payment_intents", "products")
    }


def test_a_payment_and_its_fulfilment_update_the_order_once(stocked: Shop) -> None:
    order = stocked.start_order([("MUG", 2)]).order
    with traced(stocked) as statements:
        assert stocked.settle(order.order_id).outcome == "settled"
    writes = [s for s in statements if s.startswith("UPDATE orders")]
    assert len(writes) == 1
    row = stocked.order(order.order_id).order
    assert (row.status, row.paid) == ("fulfilled", order.total)
    before = _tables(stocked)
    stocked.ledger.rebuild()
    assert _tables(stocked) == before
    assert stocked.ledger.verify().ok


def test_a_refund_recorded_before_the_payment_still_equals_a_rebuild(stocked: Shop) -> None:
    order = stocked.start_order([("MUG", 2)]).order
    refund = RefundRecorded(
        order_id=order.order_id,
        intent_id=order.intent_id or "",
        event_id="evt_refund_first",
        amount_refunded=100,
        currency=order.currency,
        full=False,
    )
    stocked.ledger.append(f"order:{order.order_id}", [refund])
    stocked.settle(order.order_id)
    row = stocked.order(order.order_id).order
    assert (row.status, row.paid, row.refunded) == ("partially_refunded", order.total, 100)
    before = _tables(stocked)
    stocked.ledger.rebuild()
    assert _tables(stocked) == before
    assert stocked.ledger.verify().ok
