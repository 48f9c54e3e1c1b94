"""Property: any interleaving of duplicate and reordered webhook deliveries settles each paid
order exactly once, never fulfils an unpaid one, conserves stock and keeps the ledger sound."""

from __future__ import annotations

import pytest
from backends import Targets
from hypothesis import HealthCheck, given, settings
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    events_of,
    stock,
    stocked_shop,
)
from strategies import deliveries

from commerce import FakeProvider, Shop

SUCCEEDED, FAILED, REFUNDED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)
ORDERS = {"o0": 1, "o1": 2, "o2": 3}  # order id -> MUG quantity (1250 EUR each)


def _body(shop: Shop, order_id: str, kind: str, event_id: str, partial: bool) -> bytes:
    refunded = 100 if partial and kind == REFUNDED else None
    return body_for(shop, order_id, kind, event_id=event_id, created=0, amount_refunded=refunded)


def _send(shop: Shop, order_id: str, kind: str, event_id: str, partial: bool) -> str:
    return deliver(shop, _body(shop, order_id, kind, event_id, partial)).outcome


def run(targets: Targets, actions: list[tuple[str, ...]]) -> None:
    """Play `actions` on a fresh shop and check the outcome against a simple model.

    Per order the model keeps a state (open, fulfilled, expired, late: paid after expiry,
    refunded_first: the provider refunded everything before the payment was settled) and the
    refunds the provider reported (`charge.refunded` carries a running total).
    """
    clock = ShopClock()
    with (
        targets.fresh("prop") as target,
        Shop.open(target, provider=FakeProvider(), clock=clock, synchronous="NORMAL") as shop,
    ):
        stocked_shop(shop)
        for order_id, quantity in ORDERS.items():
            shop.start_order([("MUG", quantity)], order_id=order_id)
        total = {o: 1250 * q for o, q in ORDERS.items()}
        state = dict.fromkeys(ORDERS, "open")
        reported = dict.fromkeys(ORDERS, 0)  # refunds reported by charge.refunded
        owed = dict.fromkeys(ORDERS, 0)  # what a late payment gives back through us
        seen_ids: set[str] = set()
        for action in actions:
            if action[0] == "tick":
                clock.advance(1800)
                shop.fire_timers()
                state = {o: "expired" if s == "open" else s for o, s in state.items()}
                continue
            _, order_id, kind, pool_id, partial = action
            event_id = f"{pool_id}_{order_id}"  # provider event ids are globally unique
            _send(shop, order_id, kind, event_id, partial == "partial")
            if event_id in seen_ids:
                continue  # a duplicate or a conflicting body: no effect
            seen_ids.add(event_id)
            paid = state[order_id] in ("fulfilled", "late", "refunded_first")
            if kind == REFUNDED:
                amount = 100 if partial == "partial" else total[order_id]
                if not (
                    state[order_id] == "late" or (paid and reported[order_id] >= total[order_id])
                ):
                    reported[order_id] = max(reported[order_id], amount)
            elif kind == SUCCEEDED and not paid:
                if reported[order_id] >= total[order_id]:
                    state[order_id] = "refunded_first"
                elif state[order_id] == "open":
                    state[order_id] = "fulfilled"
                else:
                    state[order_id] = "late"
                    owed[order_id] = total[order_id] - reported[order_id]
        _check(shop, state, total, owed)


def _check(shop: Shop, state: dict[str, str], total: dict[str, int], owed: dict[str, int]) -> None:
    statuses = {
        "open": {"awaiting_payment"},
        "expired": {"expired"},
        "late": {"refunded"},
        "refunded_first": {"refunded"},
        "fulfilled": {"fulfilled", "partially_refunded", "refunded"},
    }
    for order_id, expected in state.items():
        row = shop.order(order_id).order
        fulfilled = count_events(shop, "OrderFulfilled", order_id)
        refunds = events_of(shop, "RefundIssued", f"order:{order_id}")
        assert fulfilled == (1 if expected == "fulfilled" else 0), (order_id, expected)
        assert [r.amount for r in refunds] == ([owed[order_id]] if owed[order_id] else [])
        assert row.status in statuses[expected], (order_id, expected, row.status)
        if expected in ("fulfilled", "late", "refunded_first"):
            assert row.paid == total[order_id]  # recorded once, never twice
        else:
            assert row.paid == 0
    sold = sum(q for o, q in ORDERS.items() if state[o] == "fulfilled")
    held = sum(q for o, q in ORDERS.items() if state[o] == "open")
    assert stock(shop, "MUG") == (10 - sold - held, held, sold)
    assert len(shop.provider.refunds) == sum(1 for v in owed.values() if v)  # type: ignore[attr-defined]
    check_all(shop)


@pytest.mark.both_backends
def test_any_interleaving_settles_each_paid_order_exactly_once(targets: Targets) -> None:
    @settings(
        max_examples=targets.examples(30),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(actions=deliveries(sorted(ORDERS)))
    def check(actions: list[tuple[str, ...]]) -> None:
        run(targets, actions)

    check()


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
def test_chosen_interleavings(targets: Targets, actions: list[tuple[str, ...]]) -> None:
    run(targets, actions)


@pytest.mark.both_backends
@pytest.mark.parametrize("partial", [True, False], ids=["partial", "full"])
def test_refund_delivered_before_the_payment(targets: Targets, partial: bool) -> None:
    """A partial refund first: the payment still fulfils. A full one first: the order is
    not fulfilled, its stock goes back, the payment is recorded as refunded (nothing owed)."""
    clock = ShopClock()
    with Shop.open(targets.new("reorder"), provider=FakeProvider(), clock=clock) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        first = deliver(shop, _body(shop, "o1", REFUNDED, "evt_r", partial))
        assert first.outcome == "recorded"  # not "refunded": nothing was paid yet
        assert "before its payment" in first.reason
        assert shop.order("o1").order.status == "awaiting_payment"
        result = deliver(shop, body_for(shop, "o1", SUCCEEDED, event_id="evt_s"))
        row = shop.order("o1").order
        assert row.paid == 2500
        if partial:
            assert result.outcome == "settled"
            assert (row.status, row.refunded) == ("partially_refunded", 100)
            assert count_events(shop, "OrderFulfilled", "o1") == 1
            assert stock(shop, "MUG") == (8, 0, 2)
        else:
            assert result.outcome == "refunded"
            assert (row.status, row.refunded) == ("refunded", 2500)
            assert count_events(shop, "OrderFulfilled", "o1") == 0
            assert stock(shop, "MUG") == (10, 0, 0)
        assert shop.provider.refunds == {}  # type: ignore[attr-defined]
        again = deliver(shop, body_for(shop, "o1", SUCCEEDED, event_id="evt_s2"))
        assert again.outcome == "already_settled"
        check_all(shop)
