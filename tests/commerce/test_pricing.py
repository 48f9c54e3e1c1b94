from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from strategies import NOW, orders, tax_rates_bp

from commerce.errors import (
    CouponRejected,
    CurrencyMismatch,
    DuplicateSku,
    EmptyOrder,
    InvalidMoney,
    InvalidOrder,
    InvalidQuantity,
    InvalidTaxRate,
    UnknownCurrency,
)
from commerce.money import MAX_AMOUNT, Money
from commerce.pricing import Coupon, Line, Quote, TaxRate, apply_bp, quote


def eur(sku: str, quantity: int, unit_price: int) -> Line:
    return Line(sku=sku, quantity=quantity, unit_price=unit_price, currency="EUR")


def test_quote_worked_example() -> None:
    lines = [eur("A1", 2, 1250), eur("B2", 1, 999)]
    ten_off = Coupon(code="TEN", percent_off_bp=1000)
    q = quote(lines, coupon=ten_off, tax_rate_bp=2000, now=NOW)
    assert [x.line_total for x in q.lines] == [2500, 999]
    assert q.subtotal == 3499
    assert q.discount == 350  # 349.9 rounds half-up
    assert q.tax == 630  # 20% of 3149 = 629.8
    assert q.total == 3499 - 350 + 630
    assert (q.currency, q.coupon_code, q.tax_rate_bp) == ("EUR", "TEN", 2000)
    assert q.total_money == Money(3779, "EUR")


@pytest.mark.parametrize(
    ("amount", "bp", "expected"),
    [(5, 1000, 1), (15, 1000, 2), (14, 1000, 1), (25, 1000, 3), (2, 2500, 1), (1, 2500, 0)],
)
def test_basis_points_round_half_up(amount: int, bp: int, expected: int) -> None:
    assert apply_bp(amount, bp) == expected


def test_tax_rounds_half_up_on_discounted_subtotal() -> None:
    q = quote([eur("A1", 1, 10)], coupon=Coupon(code="HALF", percent_off_bp=5000), now=NOW)
    assert (q.discount, q.tax) == (5, 0)
    q = quote([eur("A1", 1, 10)], tax_rate_bp=500, now=NOW)  # 0.5 -> 1
    assert (q.tax, q.total) == (1, 11)


def test_fixed_coupon_never_exceeds_subtotal() -> None:
    big = Coupon(code="BIG", amount_off=10_000, currency="EUR")
    q = quote([eur("A1", 1, 300)], coupon=big, tax_rate_bp=2000, now=NOW)
    assert (q.subtotal, q.discount, q.tax, q.total) == (300, 300, 0, 0)


def test_zero_decimal_currency() -> None:
    lines = [Line(sku="T", quantity=3, unit_price=333, currency="JPY")]
    q = quote(lines, coupon=Coupon(code="C", percent_off_bp=1500), tax_rate_bp=1000, now=NOW)
    assert (q.subtotal, q.discount, q.tax, q.total) == (999, 150, 85, 934)


def test_empty_order() -> None:
    with pytest.raises(EmptyOrder, match="at least one line"):
        quote([], now=NOW)


@pytest.mark.parametrize("quantity", [0, -1, 1.5, True, "2", None])
def test_invalid_quantity(quantity: object) -> None:
    with pytest.raises(InvalidQuantity, match="'A1'") as info:
        eur("A1", quantity, 100)  # type: ignore[arg-type]
    assert info.value.quantity == quantity
    assert isinstance(info.value, InvalidOrder)


def test_invalid_lines() -> None:
    with pytest.raises(InvalidOrder, match="non-empty SKU"):
        eur(" ", 1, 100)
    with pytest.raises(InvalidMoney, match="cannot be negative"):
        eur("A1", 1, -1)
    with pytest.raises(InvalidMoney, match="floats are not allowed"):
        eur("A1", 1, 1.5)  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrency):
        Line(sku="A1", quantity=1, unit_price=1, currency="eur")


def test_line_validates_when_decoded() -> None:
    bad = b'{"sku":"A1","quantity":0,"unit_price":1,"currency":"EUR"}'
    with pytest.raises(msgspec.ValidationError, match="invalid quantity"):
        msgspec.json.decode(bad, type=Line)


def test_duplicate_sku_lines_are_rejected_not_merged() -> None:
    lines = [eur("A1", 1, 100), eur("B2", 1, 100), eur("A1", 2, 100), eur("B2", 1, 100)]
    with pytest.raises(DuplicateSku, match="'A1', 'B2'") as info:
        quote(lines, now=NOW)
    assert info.value.skus == ["A1", "B2"]


def test_mixed_currencies() -> None:
    usd = Line(sku="B2", quantity=1, unit_price=100, currency="USD")
    with pytest.raises(CurrencyMismatch, match="expected EUR, got USD"):
        quote([eur("A1", 1, 100), usd], now=NOW)


def test_coupon_expiry_is_exclusive() -> None:
    expires = NOW + timedelta(hours=1)
    coupon = Coupon(code="SOON", percent_off_bp=1000, expires_at=expires)
    just_before = quote([eur("A1", 1, 100)], coupon=coupon, now=expires - timedelta(seconds=1))
    assert just_before.discount == 10
    with pytest.raises(CouponRejected, match="'SOON' rejected: expired") as info:
        quote([eur("A1", 1, 100)], coupon=coupon, now=expires)
    assert info.value.code == "SOON"


def test_coupon_minimum_subtotal() -> None:
    coupon = Coupon(code="MIN", amount_off=500, currency="EUR", min_subtotal=5000)
    with pytest.raises(CouponRejected, match=r"at least 50\.00 EUR"):
        quote([eur("A1", 1, 4999)], coupon=coupon, now=NOW)
    assert quote([eur("A1", 1, 5000)], coupon=coupon, now=NOW).discount == 500


def test_coupon_currency_mismatch() -> None:
    coupon = Coupon(code="USD5", amount_off=500, currency="USD")
    with pytest.raises(CouponRejected, match="for USD, the order is in EUR"):
        quote([eur("A1", 1, 1000)], coupon=coupon, now=NOW)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({}, "exactly one of"),
        ({"percent_off_bp": 100, "amount_off": 1, "currency": "EUR"}, "exactly one of"),
        ({"percent_off_bp": 0}, "1..10000"),
        ({"percent_off_bp": 10_001}, "1..10000"),
        ({"percent_off_bp": 10.5}, "1..10000"),
        ({"amount_off": 100}, "needs a currency"),
        ({"percent_off_bp": 100, "min_subtotal": 10}, "needs a currency"),
        ({"amount_off": -1, "currency": "EUR"}, "amount_off must be whole"),
        ({"percent_off_bp": 100, "currency": "EUR", "min_subtotal": 1.5}, "min_subtotal"),
        ({"percent_off_bp": 100, "expires_at": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
def test_badly_defined_coupons(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(CouponRejected, match=fragment):
        Coupon(code="BAD", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("rate", [-1, 1.5, True, "2000"])
def test_invalid_tax_rate(rate: object) -> None:
    with pytest.raises(InvalidTaxRate):
        quote([eur("A1", 1, 100)], tax_rate_bp=rate, now=NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidTaxRate):
        TaxRate(name="VAT", rate_bp=rate)  # type: ignore[arg-type]


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        quote([eur("A1", 1, 100)], now=datetime(2026, 1, 1))


def test_amounts_beyond_range_are_refused() -> None:
    with pytest.raises(InvalidMoney, match="beyond the supported range"):
        quote([eur("A1", 2, MAX_AMOUNT // 2 + 1)], now=NOW)


def test_quote_round_trips_through_msgspec() -> None:
    q = quote([eur("A1", 2, 1250)], tax_rate_bp=700, now=NOW)
    assert msgspec.json.decode(msgspec.json.encode(q), type=Quote) == q


Order = tuple[str, list[Line], Coupon | None]


def _quote_or_rejected(order: Order, tax_bp: int) -> Quote | None:
    _, lines, coupon = order
    try:
        return quote(lines, coupon=coupon, tax_rate_bp=tax_bp, now=NOW)
    except CouponRejected as exc:
        subtotal = sum(x.quantity * x.unit_price for x in lines)
        assert coupon is not None
        assert subtotal < coupon.min_subtotal, exc
        return None


@settings(max_examples=300, deadline=None)
@given(orders, tax_rates_bp)
def test_pricing_laws(order: Order, tax_bp: int) -> None:
    q = _quote_or_rejected(order, tax_bp)
    if q is None:
        return
    assert q.currency == order[0]
    assert sum(x.line_total for x in q.lines) == q.subtotal
    assert all(x.line_total == x.quantity * x.unit_price for x in q.lines)
    assert 0 <= q.discount <= q.subtotal
    assert q.tax >= 0
    assert q.total >= 0
    assert q.subtotal - q.discount + q.tax == q.total


@settings(max_examples=100, deadline=None)
@given(orders, tax_rates_bp)
def test_quote_is_deterministic(order: Order, tax_bp: int) -> None:
    first = _quote_or_rejected(order, tax_bp)
    second = _quote_or_rejected(order, tax_bp)
    assert first == second
    if first is not None:
        assert msgspec.json.encode(first) == msgspec.json.encode(second)
