"""Pricing: an order's lines, an optional coupon and a tax rate become a `Quote`.

All amounts are integer minor units; rates are basis points (1 bp = 0.01%, 10000 = 100%).

Rounding, applied once per order (never per line):
- a percent coupon's discount is `subtotal * bp / 10000` rounded half-up to the minor unit
  (the customer gets the half cent); a fixed coupon takes `min(amount_off, subtotal)`;
- tax is exclusive, on `subtotal - discount`, `* bp / 10000` rounded half-up (the usual
  commercial rounding of a VAT line);
- `total = subtotal - discount + tax`, exactly.

Duplicate SKU lines are rejected (`DuplicateSku`), never merged: a line's unit price comes
from the catalog, so two lines for one SKU mean the caller built the order wrongly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

import msgspec

from commerce.errors import (
    CouponRejected,
    CurrencyMismatch,
    DuplicateSku,
    EmptyOrder,
    InvalidMoney,
    InvalidOrder,
    InvalidQuantity,
    InvalidTaxRate,
)
from commerce.limits import MAX_TAX_RATE_BP
from commerce.money import MAX_AMOUNT, Money, check_amount, exponent

BP_SCALE = 10_000
"""Basis points in one whole: 10000 bp = 100%."""


def apply_bp(amount: int, rate_bp: int) -> int:
    """`amount * rate_bp / 10000` rounded half-up, for `amount, rate_bp >= 0`."""
    return (2 * amount * rate_bp + BP_SCALE) // (2 * BP_SCALE)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_price(value: object, currency: str, what: str) -> int:
    amount = check_amount(value, currency)
    if amount < 0:
        raise InvalidMoney(value, currency, f"{what} cannot be negative")
    return amount


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One order line: `quantity` units of `sku` at `unit_price` minor units each."""

    sku: str
    quantity: int
    unit_price: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.sku, str) or not self.sku.strip():
            raise InvalidOrder(f"a line needs a non-empty SKU, got {self.sku!r}")
        if not _whole(self.quantity) or self.quantity < 1:
            raise InvalidQuantity(self.sku, self.quantity)
        exponent(self.currency)
        _check_price(self.unit_price, self.currency, "a unit price")


class Coupon(msgspec.Struct, frozen=True, kw_only=True):
    """A coupon: `percent_off_bp` (basis points, 1..10000) or `amount_off` (minor units).

    `currency` is required for a fixed amount or a minimum subtotal (both are money) and,
    when set, must be the order's. `expires_at` (timezone-aware) is exclusive: at that
    instant the coupon no longer applies.
    """

    code: str
    percent_off_bp: int | None = None
    amount_off: int | None = None
    currency: str | None = None
    min_subtotal: int = 0
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        problem = _coupon_problem(self)
        if problem:
            raise CouponRejected(self.code, problem)


def _coupon_problem(c: Coupon) -> str | None:
    if (c.percent_off_bp is None) == (c.amount_off is None):
        return "set exactly one of percent_off_bp and amount_off"
    if c.percent_off_bp is not None and (
        not _whole(c.percent_off_bp) or not 1 <= c.percent_off_bp <= BP_SCALE
    ):
        return f"percent_off_bp must be whole basis points in 1..{BP_SCALE}"
    needs_currency = c.amount_off is not None or c.min_subtotal != 0
    if needs_currency and c.currency is None:
        return "a fixed amount or a minimum subtotal needs a currency"
    if c.currency is not None:
        exponent(c.currency)
    for name in ("amount_off", "min_subtotal"):
        value = getattr(c, name)
        if value is not None and (not _whole(value) or not 0 <= value <= MAX_AMOUNT):
            return f"{name} must be whole minor units in 0..{MAX_AMOUNT}"
    if c.expires_at is not None and c.expires_at.utcoffset() is None:
        return "expires_at must be timezone-aware"
    return None


class TaxRate(msgspec.Struct, frozen=True, kw_only=True):
    """A configured exclusive tax rate, in basis points (2000 = 20%)."""

    name: str
    rate_bp: int

    def __post_init__(self) -> None:
        check_rate(self.rate_bp)


def check_rate(rate_bp: int) -> int:
    """`rate_bp` if it is whole basis points in 0..`MAX_TAX_RATE_BP`, else `InvalidTaxRate`."""
    if not _whole(rate_bp) or not 0 <= rate_bp <= MAX_TAX_RATE_BP:
        raise InvalidTaxRate(rate_bp, MAX_TAX_RATE_BP)
    return rate_bp


class QuoteLine(msgspec.Struct, frozen=True, kw_only=True):
    """A priced line: `line_total = quantity * unit_price`."""

    sku: str
    quantity: int
    unit_price: int
    line_total: int


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """A priced order; `subtotal - discount + tax == total`, all in `currency`."""

    lines: tuple[QuoteLine, ...]
    currency: str
    subtotal: int
    discount: int
    tax: int
    total: int
    coupon_code: str | None = None
    tax_rate_bp: int = 0

    @property
    def total_money(self) -> Money:
        """The amount to charge."""
        return Money(self.total, self.currency)


def _order_currency(lines: Sequence[Line]) -> str:
    if not lines:
        raise EmptyOrder()
    currency = lines[0].currency
    for line in lines:
        if line.currency != currency:
            raise CurrencyMismatch(currency, line.currency, f"order line {line.sku!r}")
    duplicates = [sku for sku, n in Counter(line.sku for line in lines).items() if n > 1]
    if duplicates:
        raise DuplicateSku(duplicates)
    return currency


def coupon_discount(coupon: Coupon, subtotal: int, currency: str, now: datetime) -> int:
    """The discount `coupon` gives on `subtotal`, or `CouponRejected` saying why not."""
    if coupon.currency is not None and coupon.currency != currency:
        reason = f"it is for {coupon.currency}, the order is in {currency}"
        raise CouponRejected(coupon.code, reason)
    if coupon.expires_at is not None and now >= coupon.expires_at:
        raise CouponRejected(coupon.code, f"expired at {coupon.expires_at.isoformat()}")
    if subtotal < coupon.min_subtotal:
        minimum = Money(coupon.min_subtotal, currency)
        raise CouponRejected(coupon.code, f"needs a subtotal of at least {minimum}")
    if coupon.percent_off_bp is not None:
        return apply_bp(subtotal, coupon.percent_off_bp)
    return min(coupon.amount_off or 0, subtotal)


def quote(
    lines: Sequence[Line], *, coupon: Coupon | None = None, tax_rate_bp: int = 0, now: datetime
) -> Quote:
    """Price `lines` with an optional `coupon` and exclusive tax; see the module rounding.

    `now` (timezone-aware) only decides coupon expiry: the caller passes the order's
    recorded time, so the same inputs always give the same quote.
    """
    if now.utcoffset() is None:
        raise ValueError("quote needs a timezone-aware `now`")
    currency = _order_currency(lines)
    check_rate(tax_rate_bp)
    priced = tuple(
        QuoteLine(
            sku=line.sku,
            quantity=line.quantity,
            unit_price=line.unit_price,
            line_total=check_amount(line.quantity * line.unit_price, currency),
        )
        for line in lines
    )
    subtotal = check_amount(sum(p.line_total for p in priced), currency)
    discount = coupon_discount(coupon, subtotal, currency, now) if coupon else 0
    tax = apply_bp(subtotal - discount, tax_rate_bp)
    return Quote(
        lines=priced,
        currency=currency,
        subtotal=subtotal,
        discount=discount,
        tax=tax,
        total=check_amount(subtotal - discount + tax, currency),
        coupon_code=coupon.code if coupon else None,
        tax_rate_bp=tax_rate_bp,
    )
