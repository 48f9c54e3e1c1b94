"""The shop's catalog, stock and order placement on a real ledger: good and bad input.

Each behaviour runs on both backends (`both_backends`); the many shapes of bad input,
which are refused before any SQL, run on SQLite alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from backends import Targets
from shop_helpers import (
    ShopClock,
    check_all,
    count_events,
    event_types,
    snapshot,
    stock,
    stocked_shop,
    unchanged,
)

from commerce import (
    Coupon,
    CouponRejected,
    CurrencyMismatch,
    DuplicateSku,
    EmptyOrder,
    FakeProvider,
    InvalidOrder,
    InvalidQuantity,
    InvalidTransition,
    Money,
    OrderConflict,
    OutOfStock,
    Shop,
    ShopConfig,
    UnknownOrder,
    UnknownProduct,
)

# -- catalog and restock ----------------------------------------------------------------


@pytest.mark.both_backends
def test_add_product_records_catalog_and_stock(shop: Shop) -> None:
    row = shop.add_product("MUG", "Mug", Money(1250, "EUR"), stock=7)
    assert (row.sku, row.name, row.unit_price, row.currency) == ("MUG", "Mug", 1250, "EUR")
    assert (row.available, row.reserved, row.sold) == (7, 0, 0)
    assert count_events(shop, "ProductAdded") == 1
    assert count_events(shop, "Restocked") == 1
    check_all(shop)


def test_add_product_without_stock_writes_no_restock(shop: Shop) -> None:
    row = shop.add_product("PEN", "Pen", Money(100, "JPY"))
    assert (row.available, row.reserved, row.sold) == (0, 0, 0)
    assert count_events(shop, "Restocked") == 0


@pytest.mark.both_backends
def test_restock_adds_to_available(stocked: Shop) -> None:
    row = stocked.restock("MUG", 5)
    assert row.available == 15
    assert stock(stocked, "MUG") == (15, 0, 0)
    check_all(stocked)


def test_products_lists_every_sku_in_order(stocked: Shop) -> None:
    assert [p.sku for p in stocked.products()] == ["MUG", "TEE", "YEN"]


@pytest.mark.parametrize("quantity", [0, -1, 1.5, "3", True, None])
def test_restock_bad_quantity_is_typed_and_writes_nothing(stocked: Shop, quantity: Any) -> None:
    with unchanged(stocked), pytest.raises(InvalidQuantity):
        stocked.restock("MUG", quantity)


def test_restock_unknown_sku(stocked: Shop) -> None:
    with unchanged(stocked), pytest.raises(UnknownProduct):
        stocked.restock("NOPE", 1)


@pytest.mark.both_backends
def test_add_product_twice_is_refused(stocked: Shop) -> None:
    with unchanged(stocked), pytest.raises(InvalidTransition):
        stocked.add_product("MUG", "Another mug", Money(1, "EUR"), stock=1)
    assert stock(stocked, "MUG") == (10, 0, 0)


@pytest.mark.parametrize(
    ("sku", "name", "qty", "error"),
    [
        ("", "Mug", 1, InvalidOrder),
        ("  ", "Mug", 1, InvalidOrder),
        ("X", "", 1, InvalidOrder),
        ("X", "X", -1, InvalidQuantity),
        ("X", "X", True, InvalidQuantity),
    ],
)
def test_add_product_bad_input(shop: Shop, sku: str, name: str, qty: Any, error: type) -> None:
    with unchanged(shop), pytest.raises(error):
        shop.add_product(sku, name, Money(100, "EUR"), stock=qty)


# -- starting an order: reserve ------------------------------------------------------------


@pytest.mark.both_backends
def test_start_order_quotes_reserves_and_awaits_payment(stocked: Shop) -> None:
    view = stocked.start_order([("MUG", 2), ("TEE", 1)], order_id="o1")
    assert view.order.status == "awaiting_payment"
    assert view.order.intent_id is not None
    assert (view.quote.subtotal, view.quote.total, view.quote.currency) == (4500, 4500, "EUR")
    assert [(q.sku, q.quantity, q.line_total) for q in view.quote.lines] == [
        ("MUG", 2, 2500),
        ("TEE", 1, 2000),
    ]
    assert stock(stocked, "MUG") == (8, 2, 0)
    assert stock(stocked, "TEE") == (4, 1, 0)
    assert event_types(stocked, "o1") == ["OrderPlaced", "StockReserved", "PaymentIntentCreated"]
    check_all(stocked)


def test_start_order_makes_an_id_when_none_given(stocked: Shop) -> None:
    view = stocked.start_order([("MUG", 1)])
    assert view.order.order_id.startswith("ord_")
    assert stocked.order(view.order.order_id).order.status == "awaiting_payment"


@pytest.mark.both_backends
def test_an_existing_order_id_never_starts_twice(stocked: Shop) -> None:
    first = stocked.start_order([("MUG", 2), ("TEE", 1)], order_id="o1")
    calls = list(stocked.provider.calls)  # type: ignore[attr-defined]
    with unchanged(stocked):
        again = stocked.start_order([("TEE", 1), ("MUG", 2)], order_id="o1")  # same lines
    assert again.order == first.order
    assert again.quote == first.quote
    assert stock(stocked, "MUG") == (8, 2, 0)
    assert stocked.provider.calls == calls  # type: ignore[attr-defined]
    assert count_events(stocked, "OrderPlaced") == 1


@pytest.mark.parametrize(
    ("items", "coupon"),
    [([("TEE", 3)], None), ([("MUG", 3), ("TEE", 1)], None), ([("MUG", 2), ("TEE", 1)], "TEN")],
    ids=["other-sku", "other-quantity", "other-coupon"],
)
def test_an_existing_order_id_with_other_lines_is_a_conflict(
    stocked: Shop, items: list[tuple[str, int]], coupon: str | None
) -> None:
    """Stripe's idempotency-key rule: the same key with other parameters is an error."""
    stocked.start_order([("MUG", 2), ("TEE", 1)], order_id="o1")
    with unchanged(stocked), pytest.raises(OrderConflict, match="'o1' exists with other lines"):
        stocked.start_order(items, coupon=coupon, order_id="o1")
    assert stock(stocked, "TEE") == (4, 1, 0)


@pytest.mark.both_backends
def test_exactly_all_stock_can_be_reserved(stocked: Shop) -> None:
    stocked.start_order([("TEE", 5)], order_id="o1")
    assert stock(stocked, "TEE") == (0, 5, 0)
    check_all(stocked)


@pytest.mark.both_backends
def test_out_of_stock_lists_every_short_sku_and_reserves_nothing(stocked: Shop) -> None:
    stocked.start_order([("TEE", 4)], order_id="o0")  # TEE: 1 left
    with unchanged(stocked), pytest.raises(OutOfStock) as info:
        stocked.start_order([("MUG", 11), ("TEE", 2)], order_id="o1")
    assert sorted(info.value.short) == [("MUG", 11, 10), ("TEE", 2, 1)]
    assert "MUG: wanted 11, available 10" in str(info.value)
    assert "TEE: wanted 2, available 1" in str(info.value)
    assert stock(stocked, "MUG") == (10, 0, 0)
    assert stock(stocked, "TEE") == (1, 4, 0)
    with pytest.raises(UnknownOrder):
        stocked.order("o1")
    check_all(stocked)


def test_out_of_stock_names_even_a_single_short_line_among_good_ones(stocked: Shop) -> None:
    with unchanged(stocked), pytest.raises(OutOfStock) as info:
        stocked.start_order([("MUG", 1), ("TEE", 6)], order_id="o1")
    assert info.value.short == [("TEE", 6, 5)]


@pytest.mark.both_backends
def test_a_rejected_order_id_can_be_used_again(stocked: Shop) -> None:
    with pytest.raises(OutOfStock):
        stocked.start_order([("TEE", 6)], order_id="o1")
    view = stocked.start_order([("TEE", 5)], order_id="o1")
    assert view.order.status == "awaiting_payment"


# -- bad input: typed error, ledger unchanged ---------------------------------------------


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], EmptyOrder),
        ([("NOPE", 1)], UnknownProduct),
        ([("MUG", 1), ("NOPE", 1)], UnknownProduct),
        ([("MUG", 0)], InvalidQuantity),
        ([("MUG", -2)], InvalidQuantity),
        ([("MUG", 1.0)], InvalidQuantity),
        ([("MUG", "1")], InvalidQuantity),
        ([("MUG", True)], InvalidQuantity),
        ([("MUG", None)], InvalidQuantity),
        ([("MUG", 1), ("MUG", 2)], DuplicateSku),
        ([("MUG", 1), ("YEN", 1)], CurrencyMismatch),
    ],
    ids=[
        "empty",
        "unknown-sku",
        "unknown-among-known",
        "zero",
        "negative",
        "float",
        "text",
        "bool",
        "none",
        "duplicate",
        "mixed-currencies",
    ],
)
def test_bad_order_is_typed_and_writes_nothing(
    stocked: Shop, items: list[tuple[str, Any]], error: type
) -> None:
    calls = list(stocked.provider.calls)  # type: ignore[attr-defined]
    with unchanged(stocked), pytest.raises(error):
        stocked.start_order(items, order_id="bad")
    assert stocked.provider.calls == calls  # type: ignore[attr-defined]
    assert [stock(stocked, s) for s in ("MUG", "TEE", "YEN")] == [
        (10, 0, 0),
        (5, 0, 0),
        (3, 0, 0),
    ]


def test_duplicate_sku_error_names_the_sku(stocked: Shop) -> None:
    with pytest.raises(DuplicateSku) as info:
        stocked.start_order([("TEE", 1), ("MUG", 1), ("TEE", 1)])
    assert info.value.skus == ["TEE"]


# -- pricing recorded with the order -----------------------------------------------------------


@pytest.mark.both_backends
def test_quote_is_recorded_with_the_order(stocked: Shop) -> None:
    view = stocked.start_order([("MUG", 3)], order_id="o1")
    (placed,) = [e for e in view.timeline if e.event == "OrderPlaced"]
    assert placed.detail["quote"]["total"] == 3750
    assert stocked.order("o1").quote == view.quote
    assert view.order.total == view.quote.total == 3750


def test_percent_coupon(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="TENOFF", percent_off_bp=1000))
    q = stocked.start_order([("MUG", 3)], coupon="TENOFF", order_id="o1").quote
    assert (q.subtotal, q.discount, q.total, q.coupon_code) == (3750, 375, 3375, "TENOFF")


def test_percent_coupon_rounds_half_up(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="THIRD", percent_off_bp=3333))
    q = stocked.start_order([("MUG", 1)], coupon="THIRD", order_id="o1").quote
    # 1250 * 0.3333 = 416.625 -> 417
    assert (q.discount, q.total) == (417, 833)


def test_fixed_coupon_never_exceeds_the_subtotal(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="FIVE", amount_off=500, currency="EUR"))
    stocked.add_coupon(Coupon(code="HUGE", amount_off=10**6, currency="EUR"))
    q = stocked.start_order([("MUG", 1)], coupon="FIVE", order_id="o1").quote
    assert (q.discount, q.total) == (500, 750)
    view = stocked.start_order([("MUG", 1)], coupon="HUGE", order_id="o2")
    assert (view.quote.discount, view.quote.total) == (1250, 0)


@pytest.mark.both_backends
def test_tax_is_exclusive_on_the_discounted_subtotal(
    targets: Targets, shop_clock: ShopClock
) -> None:
    config = ShopConfig(tax_rate_bp=2000)
    with Shop.open(
        targets.new("tax"), provider=FakeProvider(), clock=shop_clock, config=config
    ) as shop:
        stocked_shop(shop)
        shop.add_coupon(Coupon(code="TENOFF", percent_off_bp=1000))
        q = shop.start_order([("MUG", 3)], coupon="TENOFF", order_id="o1").quote
        assert (q.subtotal, q.discount, q.tax, q.total, q.tax_rate_bp) == (
            3750,
            375,
            675,
            4050,
            2000,
        )
        assert q.subtotal - q.discount + q.tax == q.total
        assert shop.order("o1").order.total == 4050
        assert shop.provider.intents[shop.order("o1").order.intent_id].amount == 4050  # type: ignore[attr-defined,index]


def test_tax_rounds_half_up(tmp_path: Path, shop_clock: ShopClock) -> None:
    with Shop.open(
        tmp_path / "tax.db",
        provider=FakeProvider(),
        clock=shop_clock,
        config=ShopConfig(tax_rate_bp=1),
    ) as s:
        s.add_product("P", "P", Money(5000, "EUR"), stock=1)
        q = s.start_order([("P", 1)], order_id="o1").quote
        assert q.tax == 1  # 5000 * 0.0001 = 0.5 -> 1


def test_coupon_in_another_currency_is_rejected(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="USD5", amount_off=500, currency="USD"))
    with unchanged(stocked), pytest.raises(CouponRejected):
        stocked.start_order([("MUG", 1)], coupon="USD5")


def test_unknown_coupon_is_rejected(stocked: Shop) -> None:
    with unchanged(stocked), pytest.raises(CouponRejected) as info:
        stocked.start_order([("MUG", 1)], coupon="NOPE")
    assert info.value.code == "NOPE"


@pytest.mark.both_backends
def test_expired_coupon_is_rejected_by_the_shop_clock(stocked: Shop, shop_clock: ShopClock) -> None:
    expires = shop_clock.now + timedelta(hours=1)
    stocked.add_coupon(Coupon(code="SOON", percent_off_bp=500, expires_at=expires))
    assert stocked.start_order([("MUG", 1)], coupon="SOON", order_id="o1").quote.discount == 63
    shop_clock.now = expires  # exclusive: at that instant it no longer applies
    with unchanged(stocked), pytest.raises(CouponRejected) as info:
        stocked.start_order([("MUG", 1)], coupon="SOON", order_id="o2")
    assert "expired" in info.value.reason


@pytest.mark.both_backends
def test_coupon_below_minimum_is_rejected(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="BIG", percent_off_bp=500, currency="EUR", min_subtotal=5000))
    with unchanged(stocked), pytest.raises(CouponRejected):
        stocked.start_order([("MUG", 3)], coupon="BIG")
    assert stocked.start_order([("MUG", 4)], coupon="BIG", order_id="o1").quote.discount == 250


@pytest.mark.both_backends
def test_coupon_can_be_replaced(stocked: Shop) -> None:
    stocked.add_coupon(Coupon(code="C", percent_off_bp=1000))
    stocked.add_coupon(Coupon(code="C", percent_off_bp=2000))
    assert stocked.start_order([("MUG", 1)], coupon="C", order_id="o1").quote.discount == 250
    check_all(stocked)


@pytest.mark.both_backends
def test_unknown_order_is_typed(stocked: Shop) -> None:
    with pytest.raises(UnknownOrder):
        stocked.order("missing")
    with unchanged(stocked), pytest.raises(UnknownOrder):
        stocked.settle("missing")
    with unchanged(stocked), pytest.raises(UnknownOrder):
        stocked.cancel_order("missing")


@pytest.mark.both_backends
def test_reopening_the_ledger_keeps_everything(targets: Targets, shop_clock: ShopClock) -> None:
    target = targets.new()
    with Shop.open(target, provider=FakeProvider(), clock=shop_clock) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        before = (snapshot(shop), shop.products(), shop.orders())
    with Shop.open(target, provider=FakeProvider(), clock=shop_clock) as shop:
        assert (snapshot(shop), shop.products(), shop.orders()) == before
        assert shop.settle("o1").outcome == "settled"
        assert stock(shop, "MUG") == (8, 0, 2)
        check_all(shop)
