"""Money: integer minor units with an ISO 4217 currency; never floats.

Parsing is exact: text and `Decimal` are read digit by digit against the currency's
exponent (2 for EUR, 0 for JPY, 3 for BHD), and anything inexact is refused, not rounded.
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

from commerce.errors import CurrencyMismatch, FloatNotAllowed, InvalidMoney, UnknownCurrency

_ZERO_DECIMAL = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE_DECIMAL = "BHD IQD JOD KWD LYD OMR TND"
_FOUR_DECIMAL = "CLF UYW"
_TWO_DECIMAL = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP "
    "GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT "
    "LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN "
    "NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES "
    "WST XCD YER ZAR ZMW ZWL"
)

EXPONENTS: dict[str, int] = {
    code: exponent
    for codes, exponent in (
        (_ZERO_DECIMAL, 0),
        (_TWO_DECIMAL, 2),
        (_THREE_DECIMAL, 3),
        (_FOUR_DECIMAL, 4),
    )
    for code in codes.split()
}
"""ISO 4217 minor-unit exponents (the standard's, which a provider may round further)."""

MAX_AMOUNT = 2**63 - 1
"""The largest absolute amount in minor units: what a SQLite INTEGER holds."""
_MAX_DIGITS = len(str(MAX_AMOUNT))

_DECIMAL_TEXT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def exponent(currency: str) -> int:
    """The number of minor-unit digits of `currency` (2 for EUR, 0 for JPY)."""
    if not isinstance(currency, str) or currency not in EXPONENTS:
        raise UnknownCurrency(currency)
    return EXPONENTS[currency]


def normalise_currency(currency: str) -> str:
    """`currency` upper-cased, checked against the table (providers send "usd")."""
    if not isinstance(currency, str):
        raise UnknownCurrency(currency)
    code = currency.strip().upper()
    exponent(code)
    return code


def check_amount(amount: object, currency: str) -> int:
    """`amount` if it is a plain int within range, else a typed error naming it."""
    if isinstance(amount, float):
        raise FloatNotAllowed(amount, currency)
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidMoney(amount, currency, "minor units must be an int")
    if abs(amount) > MAX_AMOUNT:
        raise InvalidMoney(amount, currency, f"beyond the supported range (+/-{MAX_AMOUNT})")
    return amount


class Money(msgspec.Struct, frozen=True):
    """An amount in minor units (cents) of an upper-case ISO 4217 currency.

    Negative amounts are representable (differences, adjustments); parsing refuses them
    unless asked. Adding or subtracting needs one currency.
    """

    amount: int
    currency: str

    def __post_init__(self) -> None:
        exponent(self.currency)
        check_amount(self.amount, self.currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Nothing, in `currency`."""
        return cls(0, currency)

    def _same(self, other: Money, op: str) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {op} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(self.currency, other.currency, f"money {op}")

    def __add__(self, other: Money) -> Money:
        self._same(other, "add")
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other, "subtract")
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __str__(self) -> str:
        return format_money(self)


def _digits_to_minor(sign: str, whole: str, frac: str, text: object, currency: str) -> int:
    places = exponent(currency)
    if len(frac) > places:
        raise InvalidMoney(text, currency, f"{currency} allows at most {places} decimals")
    whole = whole.lstrip("0")
    if len(whole) + places > _MAX_DIGITS:
        raise InvalidMoney(text, currency, f"beyond the supported range (+/-{MAX_AMOUNT})")
    minor = int((whole or "0") + frac.ljust(places, "0"))
    return check_amount(-minor if sign else minor, currency)


def _check_sign(amount: int, text: object, currency: str, allow_negative: bool) -> int:
    if amount < 0 and not allow_negative:
        raise InvalidMoney(text, currency, "negative amounts are not allowed here")
    return amount


def parse_money(text: str, currency: str, *, allow_negative: bool = False) -> Money:
    """Read a plain decimal like "12.50" exactly as `Money` in `currency`.

    Only ASCII digits with an optional "." and at most the currency's decimals: no
    exponent, sign "+", thousands separator, decimal comma, NaN or infinity.
    """
    code = normalise_currency(currency)
    if isinstance(text, float):
        raise FloatNotAllowed(text, code)
    if not isinstance(text, str):
        raise InvalidMoney(text, code, "expected text such as '12.50'")
    match = _DECIMAL_TEXT.fullmatch(text.strip())
    if match is None:
        raise InvalidMoney(text, code, "expected digits with an optional '.', e.g. '12.50'")
    sign, whole, frac = match.group(1), match.group(2), match.group(3) or ""
    amount = _digits_to_minor(sign, whole, frac, text, code)
    return Money(_check_sign(amount, text, code, allow_negative), code)


def from_major(value: Decimal | str | int, currency: str, *, allow_negative: bool = False) -> Money:
    """Exact `Money` from major units (SumUp's 19.99): Decimal, decimal text or int.

    Trailing zeros are fine (Decimal("10.100") EUR is 1010); a value with more
    significant decimals than the currency has is refused, never rounded.
    """
    code = normalise_currency(currency)
    if isinstance(value, float):
        raise FloatNotAllowed(value, code)
    if isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value.strip()) is None:
            raise InvalidMoney(value, code, "expected digits with an optional '.', e.g. '19.99'")
        return _major_decimal(Decimal(value.strip()), value, code, allow_negative)
    return _major_decimal(value, value, code, allow_negative)


def _major_decimal(value: object, shown: object, code: str, allow_negative: bool) -> Money:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise InvalidMoney(shown, code, "expected Decimal, decimal text or int")
    number = Decimal(value)
    if not number.is_finite():
        raise InvalidMoney(shown, code, "not a finite number")
    sign, digits, exp = number.as_tuple()
    text = "".join(map(str, digits))
    significant = text.rstrip("0")
    shift = int(exp) + len(text) - len(significant) + exponent(code)
    if significant and shift < 0:
        raise InvalidMoney(shown, code, f"{code} allows at most {exponent(code)} decimals")
    if significant and len(significant) + shift > _MAX_DIGITS:
        raise InvalidMoney(shown, code, f"beyond the supported range (+/-{MAX_AMOUNT})")
    minor = int(significant) * 10**shift if significant else 0
    amount = check_amount(-minor if sign else minor, code)
    return Money(_check_sign(amount, shown, code, allow_negative), code)


def to_major(money: Money) -> Decimal:
    """The amount in major units as an exact Decimal (for display and providers)."""
    return Decimal(money.amount).scaleb(-exponent(money.currency))


def format_money(money: Money) -> str:
    """ "12.50 EUR": the amount with the currency's decimals, then the code."""
    places = exponent(money.currency)
    sign = "-" if money.amount < 0 else ""
    digits = str(abs(money.amount)).rjust(places + 1, "0")
    if places:
        digits = f"{digits[:-places]}.{digits[-places:]}"
    return f"{sign}{digits} {money.currency}"
