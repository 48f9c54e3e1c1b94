"""Review holds end (issue 11, case 1): accept, refund, a refund of a held order, expiry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from backends import Targets
from shop_helpers import (
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    event_types,
    stock,
    stocked_shop,
    unchanged,
)

from commerce import FakeProvider, InvalidTransition, Shop, ShopConfig

DAY = 24 * 3600
pytestmark = pytest.mark.both_backends


@pytest.fixture
def held(targets: Targets, shop_clock: ShopClock) -> Iterator[Shop]:
    """o1 (2 MUG, 25.00 EUR) paid 10.00 EUR: held for review with its stock."""
    config = ShopConfig(review_timeout_seconds=3 * DAY)
    with Shop.open(
        targets.new("review"), provider=FakeProvider(), clock=shop_clock, config=config
    ) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        assert shop.settle("o1", amount=1000).order_status == "needs_review"
        assert stock(shop, "MUG") == (8, 2, 0)
        yield shop


def test_a_held_order_keeps_its_stock_until_someone_decides(
    held: Shop, shop_clock: ShopClock
) -> None:
    shop_clock.advance(2 * DAY)
    held.fire_timers()
    assert held.order("o1").order.status == "needs_review"
    assert stock(held, "MUG") == (8, 2, 0)


def test_accept_fulfils_with_the_held_stock(held: Shop) -> None:
    view = held.review("o1", "accept", reason="customer paid the rest by bank transfer")
    assert (view.order.status, view.order.paid) == ("fulfilled", 1000)
    assert stock(held, "MUG") == (8, 0, 2)
    assert event_types(held, "o1")[-3:] == ["ReviewResolved", "StockCommitted", "OrderFulfilled"]
    with unchanged(held), pytest.raises(InvalidTransition, match="is fulfilled"):
        held.review("o1", "refund")
    check_all(held)


def test_refund_gives_the_payment_back_and_releases_the_stock(held: Shop) -> None:
    view = held.review("o1", "refund")
    assert (view.order.status, view.order.paid, view.order.refunded) == ("refunded", 1000, 1000)
    assert stock(held, "MUG") == (10, 0, 0)
    (refund,) = held.provider.refunds.values()  # type: ignore[attr-defined]
    assert (refund.amount, refund.currency) == (1000, "EUR")
    assert "ReviewResolved" in event_types(held, "o1")
    with unchanged(held), pytest.raises(InvalidTransition):
        held.review("o1", "accept")
    check_all(held)


def test_a_full_refund_from_the_provider_releases_a_held_order(held: Shop) -> None:
    result = deliver(held, body_for(held, "o1", "charge.refunded", event_id="evt_r", amount=1000))
    assert (result.outcome, result.order_status) == ("refunded", "refunded")
    assert stock(held, "MUG") == (10, 0, 0)  # not 2 units stranded in `reserved`
    check_all(held)


def test_a_partial_refund_keeps_the_order_held_and_the_refund_gives_back_the_rest(
    held: Shop,
) -> None:
    body = body_for(
        held, "o1", "charge.refunded", event_id="evt_r", amount=1000, amount_refunded=400
    )
    assert deliver(held, body).order_status == "needs_review"
    assert stock(held, "MUG") == (8, 2, 0)
    view = held.review("o1", "refund")
    assert (view.order.status, view.order.refunded) == ("refunded", 1000)
    (refund,) = held.provider.refunds.values()  # type: ignore[attr-defined]
    assert refund.amount == 600
    assert stock(held, "MUG") == (10, 0, 0)
    check_all(held)


def test_an_expired_hold_is_refunded_and_released_and_says_so(
    held: Shop, shop_clock: ShopClock
) -> None:
    shop_clock.advance(3 * DAY)
    fired = held.fire_timers()
    assert [(f.mode, f.status) for f in fired] == [("review-expiry", "completed")]
    row = held.order("o1").order
    assert (row.status, row.refunded) == ("refunded", 1000)
    assert stock(held, "MUG") == (10, 0, 0)
    (resolved,) = [e for e in held.order("o1").timeline if e.event == "ReviewResolved"]
    assert resolved.detail["decision"] == "refund"
    assert "expired" in resolved.detail["reason"]
    assert held.fire_timers() == []  # decided once
    check_all(held)


def test_a_refused_refund_keeps_the_hold_and_can_be_tried_again(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"refund": ["invalid_request"]})
    with Shop.open(targets.new("r"), clock=shop_clock, provider=provider) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        shop.settle("o1", amount=1000)
        view = shop.review("o1", "refund")
        assert view.order.status == "needs_review"
        assert "refund failed" in view.timeline[-1].detail["reason"]
        assert stock(shop, "MUG") == (8, 2, 0)
        assert shop.review("o1", "refund").order.status == "refunded"
        assert stock(shop, "MUG") == (10, 0, 0)
        assert count_events(shop, "RefundIssued", "o1") == 1
        check_all(shop)


def test_a_hold_without_its_stock_can_only_be_refunded(
    targets: Targets, shop_clock: ShopClock
) -> None:
    """A late payment whose refund failed is held, but its stock went back long ago."""
    provider = FakeProvider(fail_next={"refund": ["invalid_request"]})
    with Shop.open(targets.new("late"), clock=shop_clock, provider=provider) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        shop.cancel_order("o1")
        assert shop.settle("o1").order_status == "needs_review"
        with unchanged(shop), pytest.raises(InvalidTransition, match="without its stock"):
            shop.review("o1", "accept")
        assert shop.review("o1", "refund").order.status == "refunded"
        assert stock(shop, "MUG") == (10, 0, 0)
        check_all(shop)


@pytest.mark.parametrize("decision", ["accept", "refund"])
def test_only_a_held_order_can_be_reviewed(stocked: Shop, decision: str) -> None:
    stocked.start_order([("MUG", 2)], order_id="o1")
    with unchanged(stocked), pytest.raises(InvalidTransition, match="awaiting_payment"):
        stocked.review("o1", decision)  # type: ignore[arg-type]
