"""The bounds in `commerce.limits`: a number past one is a typed error and writes nothing,
never an `OverflowError` from SQLite or `datetime`; a number at one works end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from shop_helpers import T0, ShopClock, check_all, stock, unchanged

from commerce import (
    MAX_PAYMENT_TIMEOUT,
    MAX_PRICE,
    MAX_QUANTITY,
    MAX_STOCK,
    MAX_TAX_RATE_BP,
    MIN_PAYMENT_TIMEOUT,
    Coupon,
    CouponRejected,
    InvalidConfig,
    InvalidMoney,
    InvalidQuantity,
    InvalidTaxRate,
    Money,
    Shop,
    ShopConfig,
)
from commerce.config import CONFIG_STREAM

HUGE = 10**30  # past every bound, and past SQLite's 64-bit integers


def _order(shop: Shop) -> str:
    """The id of an order awaiting payment (started before the ledger is compared)."""
    return shop.orders("awaiting_payment")[0].order_id


@pytest.mark.parametrize(
    ("action", "error", "fragment"),
    [
        (lambda s: s.start_order([("MUG", MAX_QUANTITY + 1)]), InvalidQuantity, "1..1000000000"),
        (lambda s: s.start_order([("MUG", HUGE)]), InvalidQuantity, "invalid quantity 1000000"),
        (lambda s: s.restock("MUG", HUGE), InvalidQuantity, "need a whole number in 1.."),
        (lambda s: s.restock("MUG", MAX_STOCK), InvalidQuantity, "MUG would hold 1000000010"),
        (lambda s: s.add_product("B", "B", Money(1, "EUR"), stock=HUGE), InvalidQuantity, "0.."),
        (lambda s: s.add_product("B", "B", Money(MAX_PRICE + 1, "EUR")), InvalidMoney, "999999.99"),
        (lambda s: s.add_product("B", "B", Money(HUGE // 10**12, "JPY")), InvalidMoney, "99999999"),
        (lambda s: s.add_product("B", "B", Money(-1, "EUR")), InvalidMoney, "a unit price is 0 to"),
        (lambda s: s.configure(ShopConfig(tax_rate_bp=HUGE)), InvalidTaxRate, "0..10000"),
        (lambda s: s.settle(_order(s), amount=HUGE), InvalidMoney, "beyond the supported range"),
        (lambda s: s.settle(_order(s), amount=-5), InvalidMoney, "a payment cannot be negative"),
    ],
    ids=["line-quantity", "line-quantity-huge", "restock-huge", "restock-past-max-stock",
         "opening-stock-huge", "price", "price-huge", "price-negative", "tax-rate",
         "settle-huge", "settle-negative"],
)  # fmt: skip
def test_past_a_bound_is_typed_and_writes_nothing(
    stocked: Shop, action: Callable[[Shop], Any], error: type[Exception], fragment: str
) -> None:
    stocked.start_order([("TEE", 1)], order_id="o1")
    with unchanged(stocked), pytest.raises(error) as caught:
        action(stocked)
    assert fragment in str(caught.value)
    assert len(str(caught.value)) < 200  # a 30-digit number is shown cut short, not in full


def test_stock_bound_counts_reserved_units(stocked: Shop) -> None:
    stocked.start_order([("MUG", 4)], order_id="o1")  # MUG: 6 available, 4 reserved
    with unchanged(stocked), pytest.raises(InvalidQuantity, match="would hold"):
        stocked.restock("MUG", MAX_STOCK - 9)
    stocked.restock("MUG", MAX_STOCK - 10)
    assert stock(stocked, "MUG") == (MAX_STOCK - 4, 4, 0)
    check_all(stocked)


def test_at_the_bounds_an_order_goes_through(stocked: Shop) -> None:
    stocked.add_product("GOLD", "Gold bar", Money(MAX_PRICE, "USD"), stock=MAX_QUANTITY)
    stocked.configure(ShopConfig(tax_rate_bp=MAX_TAX_RATE_BP))
    view = stocked.start_order([("GOLD", MAX_QUANTITY)], order_id="o1")
    assert view.order.status == "awaiting_payment"
    assert view.quote.total == 2 * MAX_PRICE * MAX_QUANTITY  # 100% tax, still an int64
    assert stocked.settle("o1").order_status == "fulfilled"
    check_all(stocked)


@pytest.mark.parametrize(
    "timeout", [MIN_PAYMENT_TIMEOUT - 1, MAX_PAYMENT_TIMEOUT + 1, 999_999_999_999, -5]
)
def test_payment_timeout_out_of_bounds_is_invalid_config(timeout: int) -> None:
    with pytest.raises(InvalidConfig, match=f"must be whole seconds in 1..{MAX_PAYMENT_TIMEOUT}"):
        ShopConfig(payment_timeout_seconds=timeout)


@pytest.mark.parametrize("rate", [MAX_TAX_RATE_BP + 1, HUGE, -1])
def test_tax_rate_out_of_bounds_is_invalid(rate: int) -> None:
    with pytest.raises(InvalidTaxRate, match=f"in 0..{MAX_TAX_RATE_BP}"):
        ShopConfig(tax_rate_bp=rate)


@pytest.mark.parametrize(
    "fields",
    [
        {"amount_off": 2**63, "currency": "EUR"},
        {"percent_off_bp": 100, "currency": "EUR", "min_subtotal": HUGE},
    ],
    ids=["amount-off", "min-subtotal"],
)
def test_coupon_amounts_beyond_int64_are_rejected(fields: dict[str, Any]) -> None:
    with pytest.raises(CouponRejected, match=r"whole minor units in 0\.\.9223372036854775807"):
        Coupon(code="BIG", **fields)


def test_the_longest_payment_timeout_waits_and_then_expires(
    stocked: Shop, shop_clock: ShopClock
) -> None:
    """Past the bound the order's timer cannot be computed (`OverflowError` inside the flow,
    after the order was reported as awaiting payment); at the bound it works."""
    stocked.configure(ShopConfig(payment_timeout_seconds=MAX_PAYMENT_TIMEOUT))
    view = stocked.start_order([("MUG", 2)], order_id="o1")
    state = stocked.engine.status("o1")
    assert (view.order.status, state.status) == ("awaiting_payment", "waiting")
    assert state.due == T0 + timedelta(seconds=MAX_PAYMENT_TIMEOUT)
    assert stocked.fire_timers(shop_clock.now + timedelta(days=29)) == []
    stocked.fire_timers(shop_clock.advance(MAX_PAYMENT_TIMEOUT))
    assert stocked.order("o1").order.status == "expired"
    assert stock(stocked, "MUG") == (10, 0, 0)
    check_all(stocked)


class _LooseConfig(msgspec.Struct, frozen=True):
    livemode: bool
    tax_rate_bp: int
    payment_timeout_seconds: int


class ShopConfigured(msgspec.Struct, frozen=True, tag=True):
    """What an older version could record: settings outside today's bounds."""

    config: _LooseConfig


def test_settings_recorded_out_of_bounds_are_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Shop.open(path) as shop:
        loose = _LooseConfig(livemode=False, tax_rate_bp=0, payment_timeout_seconds=999_999_999)
        shop.ledger.append(CONFIG_STREAM, [ShopConfigured(config=loose)])
    with pytest.raises(InvalidConfig, match="payment_timeout_seconds 999999999"):
        Shop.open(path)
    with Shop.open(path, config=ShopConfig()) as shop:  # the way out: record new settings
        shop.configure(ShopConfig(payment_timeout_seconds=600))
    with Shop.open(path) as shop:
        assert shop.config.payment_timeout_seconds == 600
