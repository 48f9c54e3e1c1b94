"""Issue 11, cases 3, 4 and 6 and the smaller defects: no money or stock left where nothing
moves it, and messages a person can read."""

from __future__ import annotations

import pytest
from backends import Targets
from hypothesis import given, settings
from hypothesis import strategies as st
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    rewrite,
    snapshot,
    stock,
    stocked_shop,
)

from commerce import Coupon, FakeProvider, InvalidTransition, Money, Shop
from commerce.providers.base import MAX_IDEMPOTENCY_KEY, bounded_key
from flowlib import RetireRefused

# -- case 3: a zero amount is not a refund -----------------------------------------------


@pytest.mark.both_backends
def test_a_zero_direct_settle_goes_to_review(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="p1")
    result = stocked.settle("p1", amount=0)
    assert (result.outcome, result.order_status) == ("recorded", "needs_review")
    assert "refunded" not in result.reason
    assert stock(stocked, "MUG") == (8, 2, 0)  # held, for a person to decide
    check_all(stocked)


def test_a_succeeded_event_with_nothing_received_goes_to_review(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="p1")
    body = rewrite(
        body_for(stocked, "p1", "payment_intent.succeeded", event_id="evt_0"),
        data__object__amount_received=0,
    )
    result = deliver(stocked, body)
    assert (result.outcome, result.order_status) == ("recorded", "needs_review")
    check_all(stocked)


def test_a_zero_payment_after_the_order_closed_goes_to_review(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="p1")
    stocked.cancel_order("p1")
    result = stocked.settle("p1", amount=0)
    assert (result.outcome, result.order_status) == ("recorded", "needs_review")
    assert stocked.provider.refunds == {}  # type: ignore[attr-defined]
    check_all(stocked)


# -- case 4: a 100%-off order -----------------------------------------------------------


@pytest.mark.both_backends
def test_a_free_order_is_fulfilled_without_a_provider_call(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="FREE", percent_off_bp=10_000))
    view = stocked.start_order([("MUG", 2)], coupon="FREE", order_id="f1")
    row = view.order
    assert (row.status, row.total, row.paid, row.intent_id) == ("fulfilled", 0, 0, None)
    assert stocked.provider.calls == []  # type: ignore[attr-defined]
    assert stock(stocked, "MUG") == (8, 0, 2)
    assert count_events(stocked, "PaymentReceived", "f1") == 1
    assert stocked.engine.result("f1") == "fulfilled"
    check_all(stocked)


# -- case 6: a move that carries only a late-payment flow ----------------------------------


@pytest.mark.both_backends
def test_retiring_a_late_payment_flow_moves_its_order_and_can_be_repeated(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"refund": ["rate_limited"]})
    with (
        Shop.open(targets.new("a"), clock=shop_clock, provider=provider) as source,
        Shop.open(targets.new("b"), provider=FakeProvider(), clock=shop_clock) as target,
    ):
        stocked_shop(source)
        source.start_order([("MUG", 2)], order_id="o1")
        source.cancel_order("o1")
        source.settle("o1")  # a late payment: its refund is retried later
        intent = source.order("o1").order.intent_id
        assert source.engine.status(f"late:{intent}").status == "waiting"
        doc = source.export_flows(status="waiting")
        receipt = target.import_flows(doc).receipt
        before = snapshot(source)
        with pytest.raises(RetireRefused, match="receipt"):
            source.retire_moved(doc)
        assert source.retire_moved(doc, receipt=receipt, dry_run=True) == [f"late:{intent}"]
        assert snapshot(source) == before
        assert source.retire_moved(doc, receipt=receipt) == [f"late:{intent}"]
        assert source.order("o1").order.status == "moved"
        late = deliver(source, body_for(source, "o1", "charge.refunded", event_id="evt_r"))
        assert late.outcome == "ignored"  # its webhooks belong to the target now
        again = snapshot(source)
        assert source.retire_moved(doc, receipt=receipt) == []  # after a crash mid-move
        assert snapshot(source) == again
        check_all(source)
        check_all(target)


# -- smaller defects ----------------------------------------------------------------------


@settings(max_examples=50)
@given(st.text(min_size=1, max_size=600))
def test_idempotency_keys_fit_stripes_limit_and_stay_stable(key: str) -> None:
    bounded = bounded_key(key)
    assert len(bounded) <= MAX_IDEMPOTENCY_KEY
    assert bounded == bounded_key(key)
    assert (bounded == key) == (len(key) <= MAX_IDEMPOTENCY_KEY)


def test_a_long_order_id_gives_keys_within_the_limit(stocked: Shop) -> None:
    long_a, long_b = "o" * 300 + "a", "o" * 300 + "b"
    for order_id in (long_a, long_b):
        stocked.start_order([("MUG", 1)], order_id=order_id)
        stocked.cancel_order(order_id)
        stocked.settle(order_id)  # a late payment: refunded with a key of its own
    calls = stocked.provider.calls  # type: ignore[attr-defined]
    assert [op for op, _ in calls] == ["create_intent", "cancel", "refund"] * 2
    keys = [key for _, key in calls]
    assert len(set(keys)) == 6
    assert all(len(key) <= MAX_IDEMPOTENCY_KEY for key in keys)


def test_a_duplicate_sku_says_product(stocked: Shop) -> None:
    with pytest.raises(InvalidTransition, match=r"^product 'MUG' is in the catalog"):
        stocked.add_product("MUG", "Mug again", Money(100, "EUR"))


def test_a_partial_refund_names_money(targets: Targets, shop_clock: ShopClock) -> None:
    with Shop.open(targets.new("m"), provider=FakeProvider(), clock=shop_clock) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        shop.settle("o1")
        body = body_for(shop, "o1", "charge.refunded", event_id="evt_r", amount_refunded=500)
        assert deliver(shop, body).reason == "partially refunded (5.00 EUR of 25.00 EUR)"


def test_an_order_a_delivery_closes_has_its_intent_cancelled_once_the_settle_commits(
    stocked: Shop,
) -> None:
    """A refund reported before its payment, then the payment: the settle closes the order,
    and right after its commit (not at the next timer run) the intent is cancelled at the
    provider, so the order's flow is finished rather than waiting on a retry."""
    intent_id = stocked.start_order([("MUG", 1)], order_id="o1").order.intent_id
    assert intent_id is not None
    deliver(stocked, body_for(stocked, "o1", "charge.refunded", event_id="evt_r"))
    result = deliver(stocked, body_for(stocked, "o1", "payment_intent.succeeded", event_id="e"))
    assert result.outcome == "refunded", result
    assert stocked.provider.intents[intent_id].status == "canceled"  # type: ignore[union-attr]
    assert stocked.engine.status("o1").status == "cancelled"
