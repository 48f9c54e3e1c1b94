"""The order flow end to end on a real ledger: pay, mismatch, fail, expire, cancel,
late payments and refunds, provider rate limits and declines (on both backends)."""

from __future__ import annotations

import pytest
from backends import Targets
from shop_helpers import (
    LiveStandIn,
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    event_types,
    events_of,
    stock,
    stocked_shop,
    unchanged,
)

from commerce import (
    FakeProvider,
    InvalidTransition,
    Shop,
    ShopConfig,
)
from commerce.webhooks import late_flow_id

SUCCEEDED, FAILED, REFUNDED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)


pytestmark = pytest.mark.both_backends


def open_shop(
    where: Targets | str, clock: ShopClock, provider: FakeProvider | None = None, **config: object
) -> Shop:
    shop = Shop.open(
        where.new("flow") if isinstance(where, Targets) else where,
        clock=clock,
        provider=provider or (LiveStandIn() if config.get("livemode") else FakeProvider()),
        config=ShopConfig(**config),  # type: ignore[arg-type]
    )
    stocked_shop(shop)
    return shop


# -- paid ---------------------------------------------------------------------------------


def test_matching_payment_fulfils_and_commits_stock(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2), ("TEE", 1)], order_id="o1")
    result = deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_1"))
    assert (result.outcome, result.order_id, result.order_status) == ("settled", "o1", "fulfilled")
    row = stocked.order("o1").order
    assert (row.status, row.paid, row.refunded) == ("fulfilled", 4500, 0)
    assert stock(stocked, "MUG") == (8, 0, 2)
    assert stock(stocked, "TEE") == (4, 0, 1)
    assert event_types(stocked, "o1")[-3:] == [
        "PaymentReceived",
        "StockCommitted",
        "OrderFulfilled",
    ]
    assert stocked.engine.status("o1").status == "completed"
    assert stocked.engine.result("o1") == "fulfilled"
    check_all(stocked)


@pytest.mark.parametrize(
    "override",
    [{"amount": 4499}, {"amount": 4501}, {"currency": "USD"}],
    ids=["underpaid", "overpaid", "other-currency"],
)
def test_mismatched_payment_needs_review_and_keeps_everything(
    stocked: Shop, override: dict[str, object]
) -> None:
    stocked.start_order([("MUG", 2), ("TEE", 1)], order_id="o1")
    body = body_for(stocked, "o1", SUCCEEDED, event_id="evt_1", **override)
    result = deliver(stocked, body)
    assert result.outcome == "recorded"
    assert result.order_status == "needs_review"
    row = stocked.order("o1").order
    assert row.status == "needs_review"
    assert row.paid == override.get("amount", 4500)  # the money is recorded, never lost
    assert count_events(stocked, "OrderFulfilled") == 0
    assert count_events(stocked, "StockCommitted") == 0
    (disputed,) = events_of(stocked, "PaymentDisputed")
    assert disputed.event_id == "evt_1"
    assert "quoted 45.00 EUR" in disputed.reason  # money shown as money, not minor units
    assert stock(stocked, "MUG") == (8, 2, 0)  # the reservation stays
    assert stock(stocked, "TEE") == (4, 1, 0)
    assert stocked.orders("needs_review")[0].order_id == "o1"
    check_all(stocked)


def test_needs_review_is_not_fulfilled_by_a_second_delivery(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_1", amount=1))
    again = deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_2"))
    assert again.outcome == "already_settled"
    assert stocked.order("o1").order.status == "needs_review"
    assert count_events(stocked, "OrderFulfilled") == 0
    check_all(stocked)


# -- failed attempts, expiry ---------------------------------------------------------------


def test_failed_payment_is_recorded_and_the_order_keeps_waiting(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    result = deliver(stocked, body_for(stocked, "o1", FAILED, event_id="evt_f1"))
    assert (result.outcome, result.order_status) == ("recorded", "awaiting_payment")
    (failed,) = events_of(stocked, "PaymentFailed")
    assert (failed.event_id, failed.reason) == ("evt_f1", "Your card was declined.")
    assert stock(stocked, "MUG") == (9, 1, 0)
    # the customer tries again and pays
    assert (
        deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_s")).outcome == "settled"
    )
    assert stock(stocked, "MUG") == (9, 0, 1)
    check_all(stocked)


def test_failed_then_timeout_expires_and_releases_stock(
    stocked: Shop, shop_clock: ShopClock
) -> None:
    stocked.start_order([("MUG", 3)], order_id="o1")
    deliver(stocked, body_for(stocked, "o1", FAILED, event_id="evt_f1"))
    shop_clock.advance(1799)
    assert stocked.fire_timers() == []
    assert stocked.order("o1").order.status == "awaiting_payment"
    shop_clock.advance(1)
    fired = stocked.fire_timers()
    assert [(f.flow_id, f.status) for f in fired] == [("o1", "completed")]
    row = stocked.order("o1").order
    assert row.status == "expired"
    assert stock(stocked, "MUG") == (10, 0, 0)
    assert event_types(stocked, "o1")[-2:] == ["StockReleased", "OrderClosed"]
    assert stocked.orders("expired")[0].order_id == "o1"
    check_all(stocked)


def test_fire_timers_with_an_explicit_later_time(stocked: Shop, shop_clock: ShopClock) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    later = shop_clock.now.replace(hour=shop_clock.now.hour + 1)
    assert len(stocked.fire_timers(later)) == 1
    assert stocked.order("o1").order.status == "expired"


def test_payment_timeout_is_configurable(targets: Targets, shop_clock: ShopClock) -> None:
    with open_shop(targets, shop_clock, payment_timeout_seconds=60) as shop:
        shop.start_order([("MUG", 1)], order_id="o1")
        shop_clock.advance(60)
        shop.fire_timers()
        assert shop.order("o1").order.status == "expired"
        check_all(shop)


def test_failed_payment_after_expiry_is_ignored(stocked: Shop, shop_clock: ShopClock) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    shop_clock.advance(1800)
    stocked.fire_timers()
    result = deliver(stocked, body_for(stocked, "o1", FAILED, event_id="evt_f"))
    assert result.outcome == "ignored"
    assert stocked.order("o1").order.status == "expired"
    assert stocked.provider.refunds == {}  # type: ignore[attr-defined]
    check_all(stocked)


# -- cancel -----------------------------------------------------------------------------


def test_merchant_cancel_releases_stock(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2), ("TEE", 2)], order_id="o1")
    view = stocked.cancel_order("o1")
    assert view.order.status == "cancelled"
    assert stock(stocked, "MUG") == (10, 0, 0)
    assert stock(stocked, "TEE") == (5, 0, 0)
    assert event_types(stocked, "o1")[-2:] == ["StockReleased", "OrderClosed"]
    assert stocked.engine.status("o1").status == "cancelled"
    check_all(stocked)


def test_cancel_after_a_failed_attempt(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    stocked.fail_payment("o1")
    assert stocked.cancel_order("o1").order.status == "cancelled"
    assert stock(stocked, "MUG") == (10, 0, 0)


def test_cancelling_a_cancelled_order_again_changes_nothing(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    stocked.cancel_order("o1")
    with unchanged(stocked):
        assert stocked.cancel_order("o1").order.status == "cancelled"
    assert stock(stocked, "MUG") == (10, 0, 0)


@pytest.mark.parametrize("end", ["fulfilled", "expired", "needs_review"])
def test_cancel_of_a_closed_order_is_an_invalid_transition(
    stocked: Shop, shop_clock: ShopClock, end: str
) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    if end == "fulfilled":
        stocked.settle("o1")
    elif end == "expired":
        shop_clock.advance(1800)
        stocked.fire_timers()
    else:
        stocked.settle("o1", amount=1)
    before = stock(stocked, "MUG")
    with unchanged(stocked), pytest.raises(InvalidTransition) as info:
        stocked.cancel_order("o1")
    assert info.value.state == end
    assert stock(stocked, "MUG") == before
    check_all(stocked)


# -- late payments -----------------------------------------------------------------------


@pytest.mark.parametrize("closed_by", ["expiry", "cancel"])
def test_late_payment_is_recorded_and_refunded_exactly_once(
    stocked: Shop, shop_clock: ShopClock, closed_by: str
) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    intent_id = stocked.order("o1").order.intent_id
    if closed_by == "expiry":
        shop_clock.advance(1800)
        stocked.fire_timers()
    else:
        stocked.cancel_order("o1")
    status = stocked.order("o1").order.status
    first = deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_late_1"))
    assert first.outcome == "refunded"
    assert status in first.reason
    again = deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_late_2"))
    assert again.outcome == "already_settled"
    same = deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_late_1"))
    assert same.outcome == "already_settled"

    provider: FakeProvider = stocked.provider  # type: ignore[assignment]
    (refund,) = provider.refunds.values()
    assert (refund.intent_id, refund.amount, refund.currency) == (intent_id, 2500, "EUR")
    assert [c for c in provider.calls if c[0] == "refund"] == [
        ("refund", f"{late_flow_id(intent_id or '')}:1")  # flow id and step
    ]
    (issued,) = events_of(stocked, "RefundIssued")
    assert (issued.refund_id, issued.amount, issued.intent_id) == (
        refund.refund_id,
        2500,
        intent_id,
    )
    row = stocked.order("o1").order
    assert (row.status, row.paid, row.refunded) == ("refunded", 2500, 2500)
    assert stock(stocked, "MUG") == (10, 0, 0)  # a late payment does not take stock
    assert stocked.engine.result(late_flow_id(intent_id or "")) == "refunded"
    assert count_events(stocked, "OrderFulfilled") == 0
    check_all(stocked)


def test_late_payment_by_the_direct_settle(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    stocked.cancel_order("o1")
    assert stocked.settle("o1").outcome == "refunded"
    assert stocked.settle("o1", event_id="other").outcome == "already_settled"
    assert len(stocked.provider.refunds) == 1  # type: ignore[attr-defined]
    check_all(stocked)


def test_late_payment_refund_retried_after_a_rate_limit(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"refund": ["rate_limited"]})
    with open_shop(targets, shop_clock, provider) as shop:
        shop.start_order([("MUG", 1)], order_id="o1")
        shop.cancel_order("o1")
        result = deliver(shop, body_for(shop, "o1", SUCCEEDED, event_id="evt_a"))
        assert result.outcome == "refunded"
        assert provider.refunds == {}
        assert deliver(shop, body_for(shop, "o1", SUCCEEDED, event_id="evt_b")).outcome == (
            "already_settled"
        )
        shop_clock.advance(2)
        shop.fire_timers()
        assert len(provider.refunds) == 1
        assert count_events(shop, "RefundIssued") == 1
        assert shop.order("o1").order.status == "refunded"
        check_all(shop)


def test_late_payment_whose_refund_is_refused_needs_review(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"refund": ["invalid_request"]})
    with open_shop(targets, shop_clock, provider) as shop:
        shop.start_order([("MUG", 1)], order_id="o1")
        shop.cancel_order("o1")
        deliver(shop, body_for(shop, "o1", SUCCEEDED, event_id="evt_a"))
        row = shop.order("o1").order
        assert (row.status, row.paid, row.refunded) == ("needs_review", 1250, 0)
        assert count_events(shop, "PaymentReceived") == 1  # kept, recorded once
        check_all(shop)


# -- refunds after fulfilment ---------------------------------------------------------------


def test_full_refund_after_fulfilment(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    stocked.settle("o1")
    result = deliver(stocked, body_for(stocked, "o1", REFUNDED, event_id="evt_r"))
    assert (result.outcome, result.order_status) == ("refunded", "refunded")


def test_partial_refund_after_fulfilment(stocked: Shop) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    stocked.settle("o1")
    body = body_for(stocked, "o1", REFUNDED, event_id="evt_r", amount_refunded=500)
    result = deliver(stocked, body)
    assert (result.outcome, result.order_status) == ("refunded", "partially_refunded")


def test_refund_state_after_fulfilment(stocked: Shop) -> None:
    """What the ledger holds after partial then full refunds (independent of the result bug)."""
    stocked.start_order([("MUG", 2)], order_id="o1")
    stocked.settle("o1")
    deliver(stocked, body_for(stocked, "o1", REFUNDED, event_id="evt_r1", amount_refunded=500))
    row = stocked.order("o1").order
    assert (row.status, row.paid, row.refunded) == ("partially_refunded", 2500, 500)
    # the same event again, and a stale (smaller) running total: recorded, not acted on
    assert (
        deliver(
            stocked, body_for(stocked, "o1", REFUNDED, event_id="evt_r1", amount_refunded=500)
        ).outcome
        == "already_settled"
    )
    stale = deliver(
        stocked, body_for(stocked, "o1", REFUNDED, event_id="evt_r0", amount_refunded=300)
    )
    assert stale.outcome == "ignored"
    deliver(stocked, body_for(stocked, "o1", REFUNDED, event_id="evt_r2"))
    row = stocked.order("o1").order
    assert (row.status, row.paid, row.refunded) == ("refunded", 2500, 2500)
    assert [e.full for e in events_of(stocked, "RefundRecorded")] == [False, True]
    # stock that left with the order stays sold (a refund does not restock)
    assert stock(stocked, "MUG") == (8, 0, 2)
    # a payment after the refund is not acted on
    late = deliver(stocked, body_for(stocked, "o1", SUCCEEDED, event_id="evt_s2"))
    assert late.outcome == "already_settled"
    assert count_events(stocked, "OrderFulfilled") == 1
    assert stocked.provider.refunds == {}  # type: ignore[attr-defined]
    check_all(stocked)


# -- provider failures on create_intent ------------------------------------------------------


def test_rate_limited_intent_waits_on_a_durable_retry(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    with open_shop(targets, shop_clock, provider) as shop:
        view = shop.start_order([("MUG", 1)], order_id="o1")
        assert (view.order.status, view.order.intent_id) == ("placed", None)
        state = shop.engine.status("o1")
        assert state.status == "waiting"
        assert state.due == shop_clock.now.replace(second=2)
        assert stock(shop, "MUG") == (9, 1, 0)
        shop_clock.advance(1)
        assert shop.fire_timers() == []
        shop_clock.advance(1)
        assert len(shop.fire_timers()) == 1
        row = shop.order("o1").order
        assert row.status == "awaiting_payment"
        assert provider.calls == [("create_intent", "o1:2"), ("create_intent", "o1:2")]
        assert list(provider.intents) == [row.intent_id]
        assert shop.settle("o1").outcome == "settled"
        assert stock(shop, "MUG") == (9, 0, 1)
        check_all(shop)


def test_rate_limit_retry_survives_a_restart(targets: Targets, shop_clock: ShopClock) -> None:
    target = targets.new()
    with open_shop(
        target, shop_clock, FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    ) as shop:
        shop.start_order([("MUG", 1)], order_id="o1")
    shop_clock.advance(5)
    with Shop.open(target, provider=FakeProvider(), clock=shop_clock) as reopened:
        reopened.fire_timers()
        assert reopened.order("o1").order.status == "awaiting_payment"
        check_all(reopened)


@pytest.mark.parametrize("kind", ["card_declined", "invalid_request"])
def test_final_provider_error_fails_the_order_and_releases_stock(
    targets: Targets, shop_clock: ShopClock, kind: str
) -> None:
    with open_shop(targets, shop_clock, FakeProvider(fail_next={"create_intent": [kind]})) as shop:
        view = shop.start_order([("MUG", 2)], order_id="o1")
        assert (view.order.status, view.order.intent_id) == ("failed", None)
        assert stock(shop, "MUG") == (10, 0, 0)
        assert event_types(shop, "o1") == [
            "OrderPlaced",
            "StockReserved",
            "StockReleased",
            "OrderClosed",
        ]
        assert shop.engine.result("o1") == "failed"
        with unchanged(shop), pytest.raises(InvalidTransition):
            shop.settle("o1")
        check_all(shop)


def test_exhausted_retries_fail_the_order(targets: Targets, shop_clock: ShopClock) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"] * 5})
    with open_shop(targets, shop_clock, provider) as shop:
        shop.start_order([("MUG", 2)], order_id="o1")
        for _ in range(4):  # retries at +2, +4, +8, +16 seconds
            assert shop.order("o1").order.status == "placed"
            shop_clock.advance(16)
            shop.fire_timers()
        row = shop.order("o1").order
        assert row.status == "failed"
        assert len(provider.calls) == 5
        assert stock(shop, "MUG") == (10, 0, 0)
        (closed,) = events_of(shop, "OrderClosed")
        assert "payment provider" in closed.reason
        check_all(shop)


def test_provider_unavailable_is_retried(targets: Targets, shop_clock: ShopClock) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["provider_unavailable"] * 2})
    with open_shop(targets, shop_clock, provider) as shop:
        shop.start_order([("MUG", 1)], order_id="o1")
        shop_clock.advance(2)
        shop.fire_timers()
        shop_clock.advance(4)
        shop.fire_timers()
        assert shop.order("o1").order.status == "awaiting_payment"


def test_merchant_cancel_while_the_intent_is_being_retried(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    with open_shop(targets, shop_clock, provider) as shop:
        shop.start_order([("MUG", 2)], order_id="o1")
        assert shop.cancel_order("o1").order.status == "cancelled"
        assert stock(shop, "MUG") == (10, 0, 0)


# -- the direct, trusted calls ------------------------------------------------------------------


def test_direct_settle_and_fail_payment(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    failed = stocked.fail_payment("o1", reason="insufficient funds")
    assert (failed.outcome, failed.order_status) == ("recorded", "awaiting_payment")
    assert events_of(stocked, "PaymentFailed")[0].reason == "insufficient funds"
    settled = stocked.settle("o1")
    assert (settled.outcome, settled.event_id, settled.order_status) == (
        "settled",
        "direct:o1",
        "fulfilled",
    )
    assert stocked.settle("o1").outcome == "already_settled"
    assert count_events(stocked, "OrderFulfilled") == 1
    check_all(stocked)


def test_direct_settle_with_a_wrong_amount_needs_review(stocked: Shop) -> None:
    stocked.start_order([("MUG", 1)], order_id="o1")
    assert stocked.settle("o1", amount=1000).order_status == "needs_review"
    assert stock(stocked, "MUG") == (9, 1, 0)


def test_direct_calls_work_in_a_live_mode_shop(targets: Targets, shop_clock: ShopClock) -> None:
    with open_shop(targets, shop_clock, livemode=True) as shop:  # on a live stand-in
        shop.start_order([("MUG", 1)], order_id="o1")
        assert shop.fail_payment("o1").outcome == "recorded"
        assert shop.settle("o1").outcome == "settled"


def test_many_orders_conserve_stock(stocked: Shop, shop_clock: ShopClock) -> None:
    for i in range(4):
        stocked.start_order([("MUG", 1), ("TEE", 1)], order_id=f"o{i}")
    stocked.settle("o0")
    stocked.cancel_order("o1")
    stocked.settle("o2", amount=5)
    shop_clock.advance(1800)
    stocked.fire_timers()
    assert [r.status for r in stocked.orders()] == [
        "fulfilled",
        "cancelled",
        "needs_review",
        "expired",
    ]
    assert stock(stocked, "MUG") == (8, 1, 1)
    assert stock(stocked, "TEE") == (3, 1, 1)
    check_all(stocked)
