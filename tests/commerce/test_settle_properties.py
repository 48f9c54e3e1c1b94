"""Property: any interleaving of duplicate and reordered webhook deliveries settles each paid
order exactly once, never fulfils an unpaid one, conserves stock and keeps the ledger sound."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    stock,
    stocked_shop,
)
from strategies import deliveries

from commerce import Shop
from flowlib import FlowNotFound

SUCCEEDED, FAILED, REFUNDED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)
ORDERS = {"o0": 1, "o1": 2, "o2": 3}  # order id -> MUG quantity (1250 EUR each)


def _send(shop: Shop, order_id: str, kind: str, event_id: str, partial: bool) -> str:
    refunded = 100 if partial and kind == REFUNDED else None
    body = body_for(shop, order_id, kind, event_id=event_id, created=0, amount_refunded=refunded)
    try:
        return deliver(shop, body).outcome
    except FlowNotFound:
        # BUG (see test_order_flow): a charge.refunded answers FlowNotFound after committing
        assert kind == REFUNDED
        return "refunded"


def run(actions: list[tuple[str, ...]]) -> None:
    """Play `actions` on a fresh shop file and check the outcome against a simple model."""
    with tempfile.TemporaryDirectory() as tmp:
        clock = ShopClock()
        with Shop.open(Path(tmp) / "prop.db", clock=clock, synchronous="NORMAL") as shop:
            stocked_shop(shop)
            for order_id, quantity in ORDERS.items():
                shop.start_order([("MUG", quantity)], order_id=order_id)
            state = dict.fromkeys(ORDERS, "open")  # open | fulfilled | expired | late
            paid_seen: set[str] = set()
            seen_ids: set[str] = set()
            for action in actions:
                if action[0] == "tick":
                    clock.advance(1800)
                    shop.fire_timers()
                    state = {o: "expired" if s == "open" else s for o, s in state.items()}
                    continue
                _, order_id, kind, pool_id, partial = action
                event_id = f"{pool_id}_{order_id}"  # provider event ids are globally unique
                if kind == REFUNDED and order_id not in paid_seen:
                    continue  # refund-before-payment is its own (xfail) test
                _send(shop, order_id, kind, event_id, partial == "partial")
                if event_id in seen_ids:
                    continue  # a duplicate or a conflicting body: no effect
                seen_ids.add(event_id)
                if kind == SUCCEEDED:
                    paid_seen.add(order_id)
                    if state[order_id] == "open":
                        state[order_id] = "fulfilled"
                    elif state[order_id] == "expired":
                        state[order_id] = "late"
            for order_id, expected in state.items():
                row = shop.order(order_id).order
                fulfilled = count_events(shop, "OrderFulfilled", order_id)
                refunds = count_events(shop, "RefundIssued", order_id)
                assert fulfilled == (1 if expected == "fulfilled" else 0), (order_id, expected)
                assert refunds == (1 if expected == "late" else 0), (order_id, expected)
                if expected == "open":
                    assert row.status == "awaiting_payment"
                elif expected == "expired":
                    assert row.status == "expired"
                elif expected == "late":
                    assert row.status == "refunded"
                else:
                    assert row.status in ("fulfilled", "refunded", "partially_refunded")
                if expected in ("fulfilled", "late"):
                    assert row.paid == row.total  # recorded once, never twice
            sold = sum(q for o, q in ORDERS.items() if state[o] == "fulfilled")
            held = sum(q for o, q in ORDERS.items() if state[o] == "open")
            assert stock(shop, "MUG") == (10 - sold - held, held, sold)
            assert len(shop.provider.refunds) == sum(s == "late" for s in state.values())  # type: ignore[attr-defined]
            check_all(shop)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=deliveries(sorted(ORDERS)))
def test_any_interleaving_settles_each_paid_order_exactly_once(
    actions: list[tuple[str, ...]],
) -> None:
    run(actions)


@pytest.mark.parametrize(
    "actions",
    [
        [("d", "o0", SUCCEEDED, "e1", "full")] * 3,
        [("d", "o0", FAILED, "e1", "full"), ("d", "o0", SUCCEEDED, "e2", "full")],
        [("d", "o0", SUCCEEDED, "e1", "full"), ("d", "o0", FAILED, "e2", "full")],
        [("d", "o1", SUCCEEDED, "e1", "full"), ("d", "o1", SUCCEEDED, "e2", "full")],
        [("d", "o1", SUCCEEDED, "e1", "full"), ("d", "o1", SUCCEEDED, "e1", "partial")],
        [
            ("d", "o2", SUCCEEDED, "e1", "full"),
            ("d", "o2", REFUNDED, "r1", "partial"),
            ("d", "o2", REFUNDED, "r2", "full"),
            ("d", "o2", REFUNDED, "r1", "partial"),
            ("d", "o2", SUCCEEDED, "e3", "full"),
        ],
        [("tick",), ("d", "o0", SUCCEEDED, "e1", "full"), ("d", "o0", SUCCEEDED, "e2", "full")],
        [("d", "o0", SUCCEEDED, "e1", "full"), ("tick",), ("d", "o1", FAILED, "e1", "full")],
    ],
    ids=[
        "dup",
        "fail-then-pay",
        "pay-then-fail",
        "two-ids",
        "id-conflict",
        "refunds",
        "late",
        "mix",
    ],
)
def test_chosen_interleavings(actions: list[tuple[str, ...]]) -> None:
    run(actions)


@pytest.mark.xfail(
    strict=True,
    reason="BUG: a charge.refunded delivered before payment_intent.succeeded moves the intent "
    "to (partially_)refunded in Settler._refund; the succeeded is then absorbed as "
    "'already_settled', the payment is never recorded, the order never fulfilled and it "
    "expires without giving back the rest: money lost",
)
@pytest.mark.parametrize("partial", [True, False], ids=["partial", "full"])
def test_refund_delivered_before_the_payment(partial: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        clock = ShopClock()
        with Shop.open(Path(tmp) / "reorder.db", clock=clock) as shop:
            stocked_shop(shop)
            shop.start_order([("MUG", 2)], order_id="o1")
            _send(shop, "o1", REFUNDED, "evt_r", partial)
            result = deliver(shop, body_for(shop, "o1", SUCCEEDED, event_id="evt_s"))
            assert result.outcome == "settled"
            row = shop.order("o1").order
            assert row.paid == 2500
            assert count_events(shop, "OrderFulfilled", "o1") == 1
            assert row.status == ("partially_refunded" if partial else "refunded")
