"""Hypothesis strategies shared by the test suites (money, order lines, coupons)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from commerce.money import EXPONENTS, Money
from commerce.pricing import Coupon, Line

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
"""A fixed, timezone-aware 'now' for quotes."""

COMMON_CURRENCIES = ("EUR", "USD", "GBP", "JPY", "KRW", "BHD", "KWD", "TND")
"""Two-, zero- and three-decimal currencies: the cases that catch exponent bugs."""

currencies = st.sampled_from(COMMON_CURRENCIES)
any_currency = st.sampled_from(sorted(EXPONENTS))
skus = st.from_regex(r"[A-Z][A-Z0-9-]{0,7}", fullmatch=True)
tax_rates_bp = st.integers(min_value=0, max_value=10_000)  # MAX_TAX_RATE_BP: 100%


def money(
    currency: str | None = None, *, min_amount: int = 0, max_amount: int = 10**15
) -> st.SearchStrategy[Money]:
    """`Money` in `currency` (else any known currency) between the bounds, in minor units."""
    codes = st.just(currency) if currency else any_currency
    return st.builds(Money, st.integers(min_amount, max_amount), codes)


def lines(
    currency: str, *, max_lines: int = 6, max_unit_price: int = 10**7
) -> st.SearchStrategy[list[Line]]:
    """Non-empty order lines in one currency, one line per SKU."""
    line = st.builds(
        Line,
        sku=skus,
        quantity=st.integers(1, 1_000),
        unit_price=st.integers(0, max_unit_price),
        currency=st.just(currency),
    )
    return st.lists(line, min_size=1, max_size=max_lines, unique_by=lambda x: x.sku)


def coupons(currency: str, *, now: datetime = NOW) -> st.SearchStrategy[Coupon]:
    """Well-defined coupons for `currency`, unexpired at `now` (the minimum may not be met)."""
    expires = st.none() | st.integers(1, 10**7).map(lambda s: now + timedelta(seconds=s))
    min_subtotal = st.integers(0, 10**6)
    percent = st.builds(
        Coupon,
        code=skus,
        percent_off_bp=st.integers(1, 10_000),
        currency=st.just(currency),
        min_subtotal=min_subtotal,
        expires_at=expires,
    )
    fixed = st.builds(
        Coupon,
        code=skus,
        amount_off=st.integers(0, 10**8),
        currency=st.just(currency),
        min_subtotal=min_subtotal,
        expires_at=expires,
    )
    return percent | fixed


orders = currencies.flatmap(lambda c: st.tuples(st.just(c), lines(c), st.none() | coupons(c)))
"""(currency, lines, coupon or None): a whole order to quote."""


# -- webhook deliveries (tests/commerce/test_settle_properties.py) ------------------------

WEBHOOK_KINDS = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)


def deliveries(
    order_ids: list[str], *, max_size: int = 14
) -> st.SearchStrategy[list[tuple[str, ...]]]:
    """Webhook deliveries over `order_ids` in any order, with repeats and re-used event ids.

    Each item is `("d", order_id, kind, event_id, "full" | "partial")` or `("tick",)` (the
    payment timeout passes). A small pool of event ids makes duplicates, re-ids and
    same-id-different-body conflicts likely.
    """
    delivery = st.tuples(
        st.just("d"),
        st.sampled_from(order_ids),
        st.sampled_from(WEBHOOK_KINDS),
        st.sampled_from(("evt_a", "evt_b", "evt_c")),
        st.sampled_from(("full", "partial")),
    )
    tick: st.SearchStrategy[tuple[str, ...]] = st.just(("tick",))
    item = st.one_of(delivery, delivery, delivery, tick)  # ticks are rarer
    return st.lists(item, max_size=max_size)
