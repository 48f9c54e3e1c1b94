"""Property, on Stripe over real HTTP to the stand-in: whatever customers pay and however
Stripe's events for it arrive (repeated, reordered, after the order timed out and its intent
was cancelled at Stripe), each paid order is fulfilled once or refunded once at Stripe, no
unpaid order is fulfilled, stock is conserved and the ledger stays sound."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shop_helpers import ShopClock, check_all, count_events, deliver, mugs_ordered, stock
from stripe_standin import API_KEY, OPENAPI, StripeStandIn

from commerce import Shop, StripeProvider

ORDERS = {"o0": 1, "o1": 2, "o2": 3}  # order id -> MUG quantity (12.50 EUR each)
Action = tuple[str, ...]


def actions() -> st.SearchStrategy[list[Action]]:
    order = st.sampled_from(sorted(ORDERS))
    pay = st.tuples(st.just("pay"), order)
    send = st.tuples(st.just("deliver"), order, st.sampled_from(("first", "last")))
    tick: st.SearchStrategy[Action] = st.just(("tick",))
    return st.lists(st.one_of(pay, send, send, tick), max_size=12)


@pytest.fixture(scope="module")
def standin() -> Iterator[StripeStandIn]:
    if not OPENAPI.is_dir():
        pytest.skip("the recorded Stripe shapes (../shared/fixtures/payments) are not here")
    server = StripeStandIn().start()
    yield server
    server.stop()


def run(standin: StripeStandIn, plays: list[Action]) -> None:
    """Play `plays` on a fresh shop; the stand-in's intents are the truth of who paid."""
    standin.reset()
    stripe = StripeProvider(API_KEY, base_url=standin.url, timeout=2.0)
    with tempfile.TemporaryDirectory() as tmp:
        clock = ShopClock()
        with Shop.open(
            Path(tmp) / "p.db", clock=clock, provider=stripe, synchronous="NORMAL"
        ) as shop:
            intent = mugs_ordered(shop, ORDERS)
            sent: dict[str, list[bytes]] = {o: [] for o in ORDERS}  # events Stripe sent
            closed: set[str] = set()
            fulfilled: set[str] = set()
            late: set[str] = set()
            for play in plays:
                if play[0] == "tick":
                    clock.advance(1800)
                    shop.fire_timers()  # expiry cancels the open intents at Stripe
                    closed |= set(ORDERS) - fulfilled
                    continue
                order_id = play[1]
                if play[0] == "pay":
                    if standin.intents[intent[order_id]]["status"] == "requires_payment_method":
                        sent[order_id].append(standin.pay(intent[order_id], created=clock.ts()))
                    continue
                if not sent[order_id]:
                    continue
                deliver(shop, sent[order_id][0 if play[2] == "first" else -1])
                if order_id not in fulfilled | late:
                    (late if order_id in closed else fulfilled).add(order_id)
            _check(shop, standin, intent, fulfilled, late)


def _check(
    shop: Shop,
    standin: StripeStandIn,
    intent: dict[str, str],
    fulfilled: set[str],
    late: set[str],
) -> None:
    for order_id, quantity in ORDERS.items():
        status = standin.intents[intent[order_id]]["status"]
        assert count_events(shop, "OrderFulfilled", order_id) == (order_id in fulfilled)
        assert order_id not in fulfilled | late or status == "succeeded"  # paid at Stripe
        paid = shop.order(order_id).order.paid
        assert paid == (1250 * quantity if order_id in fulfilled | late else 0)
        if order_id in closed_orders(shop) and order_id not in late and status != "succeeded":
            assert status == "canceled"  # the customer can no longer pay a closed order
    refunded = sorted(r["amount"] for r in standin.refunds.values())
    assert refunded == sorted(1250 * ORDERS[o] for o in late)  # each late payment, once
    sold = sum(ORDERS[o] for o in fulfilled)
    held = sum(ORDERS[o] for o in ORDERS if shop.order(o).order.status == "awaiting_payment")
    assert stock(shop, "MUG") == (10 - sold - held, held, sold)
    check_all(shop)


def closed_orders(shop: Shop) -> set[str]:
    return {o for o in ORDERS if shop.order(o).order.status == "expired"}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plays=actions())
def test_any_stripe_history_settles_each_paid_order_once(
    standin: StripeStandIn, plays: list[Action]
) -> None:
    run(standin, plays)


@pytest.mark.parametrize(
    "plays",
    [
        [("pay", "o0"), ("deliver", "o0", "first"), ("deliver", "o0", "last")],
        [("pay", "o1"), ("tick",), ("deliver", "o1", "first")],
        [("tick",), ("pay", "o2"), ("deliver", "o2", "first")],
        [("pay", "o0"), ("pay", "o0"), ("deliver", "o0", "last"), ("tick",)],
    ],
    ids=["dup", "paid-then-expired", "cancelled-at-stripe", "pay-twice"],
)
def test_chosen_stripe_histories(standin: StripeStandIn, plays: list[Action]) -> None:
    run(standin, plays)
