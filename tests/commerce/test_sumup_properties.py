"""Property, on SumUp over real HTTP: whatever customers do at SumUp and however its signed
events and legacy notices arrive (repeated, reordered, claiming stale statuses, after the
order timed out), each order paid at SumUp is fulfilled once or refunded once, no unpaid
order is fulfilled, stock is conserved and the ledger stays sound.

SumUp's API is the truth here (the stand-in's checkout states): every event is confirmed
against it, so the model follows the checkouts, not what the events claim.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shop_helpers import ShopClock, check_all, count_events, events_of, mugs_ordered, stock
from sumup_standin import API_KEY, MERCHANT_CODE, OPENAPI, SumUpStandIn

from commerce import ProviderUnavailable, Shop, SumUpProvider, SumUpWebhooks
from commerce.providers.sumup_webhooks import SIGNATURE_HEADER, sign

SECRET = "sumup_whsec_prop"
ORDERS = {"o0": 1, "o1": 2, "o2": 3}  # order id -> MUG quantity (12.50 EUR each)
CLAIMS = ("PAID", "FAILED", "EXPIRED", "PENDING")

Action = tuple[str, ...]


def actions() -> st.SearchStrategy[list[Action]]:
    order = st.sampled_from(sorted(ORDERS))
    customer = st.tuples(st.sampled_from(("pay", "fail")), order)
    signed = st.tuples(
        st.just("signed"), order, st.sampled_from(CLAIMS), st.sampled_from(("ea", "eb"))
    )
    legacy = st.tuples(st.just("legacy"), order)
    tick: st.SearchStrategy[Action] = st.just(("tick",))
    return st.lists(st.one_of(customer, signed, signed, legacy, legacy, tick), max_size=14)


@pytest.fixture(scope="module")
def standin() -> Iterator[SumUpStandIn]:
    if not OPENAPI.is_dir():
        pytest.skip("the recorded SumUp shapes (../shared/fixtures/payments) are not here")
    server = SumUpStandIn().start()
    yield server
    server.stop()


def _updated(event_id: str, checkout_id: str, claim: str) -> bytes:
    return (
        f'{{"id": "{event_id}", "event_type": "checkout.status.updated",'
        f' "payload": {{"checkout_id": "{checkout_id}", "status": "{claim}"}}}}'
    ).encode()


def _legacy(checkout_id: str) -> bytes:
    return f'{{"event_type": "CHECKOUT_STATUS_CHANGED", "id": "{checkout_id}"}}'.encode()


def run(standin: SumUpStandIn, plays: list[Action]) -> None:
    """Play `plays` on a fresh shop and check it against the model: per order, whether it
    was fulfilled, and whether a payment reached it after it closed (then refunded)."""
    standin.checkouts.clear()
    standin.refunds.clear()
    sumup = SumUpProvider(API_KEY, MERCHANT_CODE, base_url=standin.url, timeout=2.0)
    source = SumUpWebhooks(SECRET, sumup)
    with tempfile.TemporaryDirectory() as tmp:
        clock = ShopClock()
        with Shop.open(
            Path(tmp) / "p.db", clock=clock, provider=sumup, synchronous="NORMAL"
        ) as shop:
            checkout = mugs_ordered(shop, ORDERS)
            closed: set[str] = set()  # timed out before any payment reached it
            fulfilled: set[str] = set()
            late: set[str] = set()
            claimed: dict[str, str] = {}  # event id -> the status its first recorded claim gave
            for play in plays:
                kind = play[0]
                if kind == "tick":
                    clock.advance(1800)
                    shop.fire_timers()
                    closed |= set(ORDERS) - fulfilled
                    continue
                order_id = play[1]
                status = standin.checkouts[checkout[order_id]]["status"]
                if kind in ("pay", "fail"):
                    if status == "PENDING":  # a processed or deactivated page takes nothing
                        (standin.pay if kind == "pay" else standin.fail)(checkout[order_id])
                    continue
                event_id = f"{play[3]}_{order_id}" if kind == "signed" else ""
                if kind == "signed":
                    body = _updated(event_id, checkout[order_id], play[2])
                    headers = {SIGNATURE_HEADER: sign(body, SECRET, int(clock().timestamp()))}
                else:
                    body, headers = _legacy(checkout[order_id]), {}
                try:
                    shop.receive(source, body, headers)
                except ProviderUnavailable:  # a PAID claim SumUp does not confirm: retried
                    assert kind == "signed" and status == "PENDING"
                    continue
                if kind == "signed" and claimed.setdefault(event_id, play[2]) != play[2]:
                    continue  # the id is another claim's: recorded as a conflict, not acted on
                if kind == "signed" and play[2] == "PENDING":
                    continue  # a pending claim is not acted on (SumUp is not even asked)
                if status == "PAID" and order_id not in fulfilled | late:
                    (late if order_id in closed else fulfilled).add(order_id)
            _check(shop, standin, checkout, fulfilled, late)


def _check(
    shop: Shop,
    standin: SumUpStandIn,
    checkout: dict[str, str],
    fulfilled: set[str],
    late: set[str],
) -> None:
    for order_id in ORDERS:
        row = shop.order(order_id).order
        paid_at_sumup = standin.checkouts[checkout[order_id]]["status"] == "PAID"
        assert count_events(shop, "OrderFulfilled", order_id) == (order_id in fulfilled)
        assert not (order_id in fulfilled and not paid_at_sumup)  # nothing unpaid fulfilled
        refunds = events_of(shop, "RefundIssued", f"order:{order_id}")
        assert len(refunds) == (order_id in late), (order_id, refunds)
        if order_id in fulfilled | late:
            assert row.paid == 1250 * ORDERS[order_id]  # recorded once, never twice
        else:
            assert row.paid == 0
    sold = sum(ORDERS[o] for o in fulfilled)
    held = sum(ORDERS[o] for o in ORDERS if shop.order(o).order.status == "awaiting_payment")
    assert stock(shop, "MUG") == (10 - sold - held, held, sold)
    given_back = sorted(amount for _, amount in standin.refunds)
    assert given_back == sorted(Decimal(1250 * ORDERS[o]) / 100 for o in late)
    check_all(shop)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(plays=actions())
def test_any_sumup_history_settles_each_paid_order_once(
    standin: SumUpStandIn, plays: list[Action]
) -> None:
    run(standin, plays)


@pytest.mark.parametrize(
    "plays",
    [
        [("pay", "o0"), ("signed", "o0", "PAID", "ea"), ("legacy", "o0"), ("legacy", "o0")],
        [("signed", "o0", "PAID", "ea"), ("pay", "o0"), ("signed", "o0", "PAID", "ea")],
        [("pay", "o1"), ("tick",), ("legacy", "o1")],
        [("fail", "o2"), ("signed", "o2", "PAID", "ea"), ("legacy", "o2"), ("pay", "o2")],
        [("pay", "o0"), ("signed", "o0", "FAILED", "ea"), ("signed", "o0", "PAID", "ea")],
        [("tick",), ("pay", "o0"), ("legacy", "o0")],
        [("pay", "o0"), ("signed", "o0", "PENDING", "eb"), ("signed", "o0", "PAID", "eb")],
    ],
    ids=[
        "dup",
        "claim-before-pay",
        "late",
        "failed-is-final",
        "stale-claim",
        "pay-after-expiry",
        "id-reused-by-another-claim",
    ],
)
def test_chosen_sumup_histories(standin: SumUpStandIn, plays: list[Action]) -> None:
    run(standin, plays)
