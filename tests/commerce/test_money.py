from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import money

from commerce.errors import (
    CommerceError,
    CurrencyMismatch,
    FloatNotAllowed,
    InvalidMoney,
    UnknownCurrency,
)
from commerce.money import (
    EXPONENTS,
    MAX_AMOUNT,
    Money,
    exponent,
    format_money,
    from_major,
    normalise_currency,
    parse_money,
    to_major,
)


@pytest.mark.parametrize(
    ("text", "currency", "amount"),
    [
        ("12.50", "EUR", 1250),
        ("12.5", "EUR", 1250),
        ("12", "EUR", 1200),
        ("0.01", "USD", 1),
        ("007.10", "GBP", 710),
        (" 3.00 ", "EUR", 300),
        ("1200", "JPY", 1200),
        ("1200", "KRW", 1200),
        ("1.234", "BHD", 1234),
        ("0.001", "KWD", 1),
        ("5", "TND", 5000),
        ("12.50", "eur", 1250),
    ],
)
def test_parse_money_is_exact(text: str, currency: str, amount: int) -> None:
    assert parse_money(text, currency) == Money(amount, currency.upper())


@pytest.mark.parametrize(
    ("text", "currency", "fragment"),
    [
        ("12.500", "EUR", "at most 2 decimals"),
        ("1.5", "JPY", "at most 0 decimals"),
        ("1.2345", "BHD", "at most 3 decimals"),
        ("-1", "EUR", "negative amounts are not allowed"),
        ("", "EUR", "expected digits"),
        ("   ", "EUR", "expected digits"),
        ("1e3", "EUR", "expected digits"),
        ("NaN", "EUR", "expected digits"),
        ("Infinity", "EUR", "expected digits"),
        ("12,50", "EUR", "expected digits"),
        ("1,000.00", "EUR", "expected digits"),
        ("+1", "EUR", "expected digits"),
        (".5", "EUR", "expected digits"),
        ("5.", "EUR", "expected digits"),
        ("\u0661\u0662", "EUR", "expected digits"),
        ("9" * 20, "EUR", "beyond the supported range"),
        ("9" * 5000, "EUR", "beyond the supported range"),
    ],
)
def test_parse_money_rejects(text: str, currency: str, fragment: str) -> None:
    with pytest.raises(InvalidMoney, match=fragment) as info:
        parse_money(text, currency)
    assert isinstance(info.value, CommerceError)
    assert isinstance(info.value, ValueError)
    assert currency in str(info.value)


def test_parse_money_negative_when_allowed() -> None:
    assert parse_money("-1.05", "EUR", allow_negative=True) == Money(-105, "EUR")


@pytest.mark.parametrize("currency", ["XXX", "EURO", "", "€"])
def test_unknown_currency(currency: str) -> None:
    with pytest.raises(UnknownCurrency, match="unknown currency"):
        parse_money("1", currency)


def test_money_wants_upper_case_codes_and_says_so() -> None:
    with pytest.raises(UnknownCurrency, match="upper-case: 'EUR'"):
        Money(1, "eur")
    assert normalise_currency(" usd ") == "USD"


@pytest.mark.parametrize(
    "call",
    [
        lambda: parse_money(12.5, "EUR"),  # type: ignore[arg-type]
        lambda: from_major(19.99, "EUR"),  # type: ignore[arg-type]
        lambda: Money(12.0, "EUR"),  # type: ignore[arg-type]
        lambda: Money(1, "EUR") + Money(0.5, "EUR"),  # type: ignore[arg-type]
    ],
)
def test_floats_are_refused(call: object) -> None:
    with pytest.raises(FloatNotAllowed, match="floats are not allowed") as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("amount", [True, "12", Decimal(12), None])
def test_money_amount_must_be_int(amount: object) -> None:
    with pytest.raises(InvalidMoney, match="minor units must be an int"):
        Money(amount, "EUR")  # type: ignore[arg-type]


def test_money_range() -> None:
    assert Money(MAX_AMOUNT, "EUR").amount == MAX_AMOUNT
    with pytest.raises(InvalidMoney, match="beyond the supported range"):
        Money(MAX_AMOUNT + 1, "EUR")


@pytest.mark.parametrize(
    ("code", "places"),
    [("EUR", 2), ("USD", 2), ("JPY", 0), ("KRW", 0), ("CLP", 0), ("VND", 0)]
    + [(c, 3) for c in ("BHD", "KWD", "JOD", "OMR", "TND", "IQD", "LYD")],
)
def test_exponents(code: str, places: int) -> None:
    assert exponent(code) == places


def test_exponent_table_holds_iso_codes() -> None:
    assert len(EXPONENTS) > 150
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in EXPONENTS)
    assert set(EXPONENTS.values()) <= {0, 2, 3, 4}


@pytest.mark.parametrize(
    ("value", "currency", "amount"),
    [
        (Decimal("19.99"), "EUR", 1999),
        ("19.99", "EUR", 1999),
        ("10.1", "EUR", 1010),
        (Decimal("10.100"), "EUR", 1010),
        (Decimal("1E+2"), "EUR", 10000),
        (Decimal("0E-30"), "EUR", 0),
        (5, "JPY", 5),
        (Decimal("1.5"), "BHD", 1500),
    ],
)
def test_from_major_is_exact(value: Decimal | str | int, currency: str, amount: int) -> None:
    assert from_major(value, currency) == Money(amount, currency)


def test_from_major_reads_json_numbers_exactly() -> None:
    # SumUp sends decimal major units; int(19.99 * 100) would be 1998.
    assert int(19.99 * 100) == 1998
    raw = msgspec.json.decode(b'{"amount": 19.99}', type=dict[str, Decimal])
    assert from_major(raw["amount"], "EUR") == Money(1999, "EUR")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (Decimal("19.991"), "at most 2 decimals"),
        (Decimal("NaN"), "not a finite number"),
        (Decimal("-Infinity"), "not a finite number"),
        (Decimal("1E-999999999999"), "at most 2 decimals"),
        (Decimal("1E+999999999999"), "beyond the supported range"),
        (Decimal("-1"), "negative amounts are not allowed"),
        ("1e3", "expected digits"),
        (True, "expected Decimal"),
    ],
)
def test_from_major_rejects(value: object, fragment: str) -> None:
    with pytest.raises(InvalidMoney, match=fragment):
        from_major(value, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("m", "text"),
    [
        (Money(1250, "EUR"), "12.50 EUR"),
        (Money(5, "EUR"), "0.05 EUR"),
        (Money(0, "EUR"), "0.00 EUR"),
        (Money(-5, "EUR"), "-0.05 EUR"),
        (Money(1200, "JPY"), "1200 JPY"),
        (Money(1234, "BHD"), "1.234 BHD"),
        (Money(1, "KWD"), "0.001 KWD"),
    ],
)
def test_format_money(m: Money, text: str) -> None:
    assert format_money(m) == text
    assert str(m) == text


def test_arithmetic_within_one_currency() -> None:
    assert Money(100, "EUR") + Money(25, "EUR") == Money(125, "EUR")
    assert Money(100, "EUR") - Money(125, "EUR") == Money(-25, "EUR")
    assert -Money(5, "EUR") == Money(-5, "EUR")
    assert Money.zero("JPY") == Money(0, "JPY")


def test_arithmetic_across_currencies_is_refused() -> None:
    with pytest.raises(CurrencyMismatch, match="expected EUR, got USD"):
        Money(100, "EUR") + Money(1, "USD")
    with pytest.raises(CurrencyMismatch):
        Money(100, "EUR") - Money(1, "JPY")
    with pytest.raises(TypeError):
        Money(100, "EUR") + 1  # type: ignore[operator]


def test_money_round_trips_through_msgspec_and_validates_on_decode() -> None:
    m = Money(1250, "EUR")
    assert msgspec.json.decode(msgspec.json.encode(m), type=Money) == m
    for bad in (b'[12.5,"EUR"]', b'[1,"eur"]', b'[1,"XXX"]'):
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(bad, type=Money)


@settings(max_examples=200, deadline=None)
@given(money(min_amount=-(10**15)))
def test_format_then_parse_round_trips(m: Money) -> None:
    text, currency = format_money(m).split(" ")
    assert parse_money(text, currency, allow_negative=True) == m


@settings(max_examples=200, deadline=None)
@given(money(min_amount=-(10**15)))
def test_major_units_round_trip(m: Money) -> None:
    major = to_major(m)
    assert from_major(major, m.currency, allow_negative=True) == m
    assert from_major(str(major), m.currency, allow_negative=True) == m


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=12), st.sampled_from(["EUR", "JPY", "BHD"]))
def test_parse_money_never_fails_untyped(text: str, currency: str) -> None:
    try:
        m = parse_money(text, currency)
    except InvalidMoney:
        return
    assert m.amount >= 0
    assert format_money(m).endswith(currency)
