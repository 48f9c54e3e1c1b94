"""Errors raised by commerce.

```
CommerceError
 + InvalidMoney           an amount that is not exact minor units (bad text, too many decimals)
    + FloatNotAllowed     a float reached a money path (also a TypeError)
 + UnknownCurrency        not an ISO 4217 code we know
 + CurrencyMismatch       two currencies met where one was required
 + InvalidOrder           an order's lines cannot be quoted
    + EmptyOrder          no lines
    + InvalidQuantity     a quantity or stock level not a whole number within its bounds
    + DuplicateSku        the same SKU on several lines (rejected, never merged)
    + OrderConflict       an order id already used for other lines
 + CouponRejected         unknown, expired, below minimum, wrong currency, badly defined
 + InvalidTaxRate         a tax rate that is not whole basis points in 0..MAX_TAX_RATE_BP
 + InvalidConfig          shop settings that cannot work (a payment timeout out of bounds)
 + UnknownProduct         no such SKU in the catalog
 + OutOfStock             one or more SKUs short: (sku, wanted, available) each
 + UnknownOrder           no order with that id
 + InvalidTransition      an order cannot move from its state by that event
 + LiveModeMismatch       a test-mode event for a live-mode shop, or the reverse
 + BadSignature           a webhook signature check failed (decided before parsing)
    + SignatureMissing    no header, or no v1 signature in it
    + SignatureMalformed  the header cannot be parsed
    + SignatureMismatch   no v1 signature matches the body
    + SignatureExpired    authentic, but the timestamp is outside the tolerance
 + MalformedEvent         a webhook body that is not a valid event (names the field)
 + BodyTooLarge           a webhook body over the limit (rejected before parsing)
 + NoPaymentProvider      no provider to take orders with (none, or the fake on a live shop)
    + MissingProviderKey  the chosen provider's keys are not in the environment
 + ProviderError          a payment provider call failed (also a flowlib StepFailed)
    + CardDeclined        final for that attempt
    + RateLimited         retryable
    + ProviderUnavailable retryable (network, 5xx)
    + InvalidRequest      the provider refused the request itself (final)
```

The value errors also subclass `ValueError`, so a `__post_init__` raising them while
msgspec decodes surfaces as `msgspec.ValidationError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from flowlib import StepFailed


class CommerceError(Exception):
    """Root of every error commerce raises."""


def _shown(value: object) -> str:
    """`repr(value)`, cut short when long (a user's number may have thousands of digits)."""
    shown = repr(value)
    return f"{shown[:50]}... ({len(shown)} chars)" if len(shown) > 60 else shown


class InvalidMoney(CommerceError, ValueError):
    """An amount that cannot be read as exact minor units of its currency."""

    def __init__(self, value: object, currency: str, reason: str) -> None:
        self.value, self.currency, self.reason = value, currency, reason
        super().__init__(f"invalid {currency} amount {_shown(value)}: {reason}")


class FloatNotAllowed(InvalidMoney, TypeError):
    """A float reached a money path; floats cannot hold minor units exactly."""

    def __init__(self, value: object, currency: str) -> None:
        super().__init__(value, currency, "floats are not allowed for money; pass str or Decimal")


class UnknownCurrency(CommerceError, ValueError):
    """A currency code that is not one of the ISO 4217 codes we know."""

    def __init__(self, currency: object) -> None:
        self.currency = currency
        hint = ""
        if isinstance(currency, str) and currency != currency.upper():
            hint = f" (codes are upper-case: {currency.upper()!r})"
        super().__init__(f"unknown currency {currency!r}{hint}")


class CurrencyMismatch(CommerceError, ValueError):
    """Two currencies met where one was required."""

    def __init__(self, expected: str, got: str, context: str = "") -> None:
        self.expected, self.got, self.context = expected, got, context
        where = f" in {context}" if context else ""
        super().__init__(f"currency mismatch{where}: expected {expected}, got {got}")


class InvalidOrder(CommerceError, ValueError):
    """An order's lines cannot be quoted."""


class EmptyOrder(InvalidOrder):
    """An order without lines."""

    def __init__(self) -> None:
        super().__init__("an order needs at least one line")


class InvalidQuantity(InvalidOrder):
    """A quantity that is not a whole number within its bounds (`commerce.limits`)."""

    def __init__(
        self, sku: str, quantity: object, reason: str = "need a whole number >= 1"
    ) -> None:
        self.sku, self.quantity, self.reason = sku, quantity, reason
        super().__init__(f"invalid quantity {_shown(quantity)} for {sku!r}: {reason}")


class DuplicateSku(InvalidOrder):
    """The same SKU on more than one line; lines are rejected, never merged."""

    def __init__(self, skus: Sequence[str]) -> None:
        self.skus = list(skus)
        listed = ", ".join(repr(s) for s in self.skus)
        super().__init__(f"duplicate SKU lines for {listed}: put each SKU on one line")


class CouponRejected(CommerceError, ValueError):
    """A coupon that cannot be applied (or is badly defined); `reason` says why."""

    def __init__(self, code: str, reason: str) -> None:
        self.code, self.reason = code, reason
        super().__init__(f"coupon {code!r} rejected: {reason}")


class InvalidTaxRate(CommerceError, ValueError):
    """A tax rate that is not whole basis points within the bounds."""

    def __init__(self, rate_bp: object, maximum: int) -> None:
        self.rate_bp, self.maximum = rate_bp, maximum
        super().__init__(
            f"invalid tax rate {_shown(rate_bp)}: need whole basis points in 0..{maximum}"
        )


class InvalidConfig(CommerceError, ValueError):
    """Shop settings that cannot work."""

    def __init__(self, setting: str, value: object, reason: str) -> None:
        self.setting, self.value, self.reason = setting, value, reason
        super().__init__(f"{setting} {_shown(value)}: {reason}")


class UnknownProduct(CommerceError):
    """No product with this SKU in the catalog."""

    def __init__(self, sku: str) -> None:
        self.sku = sku
        super().__init__(f"unknown product {sku!r}")


class OutOfStock(CommerceError):
    """Not enough stock; `short` lists (sku, wanted, available) for each short SKU."""

    def __init__(self, short: Sequence[tuple[str, int, int]]) -> None:
        self.short = [tuple(s) for s in short]
        parts = "; ".join(f"{sku}: wanted {w}, available {a}" for sku, w, a in self.short)
        super().__init__(f"out of stock: {parts}")


class UnknownOrder(CommerceError):
    """No order with this id."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(f"unknown order {order_id!r}")


class InvalidTransition(CommerceError):
    """An order (or the `subject` named) cannot move from its state by this event or command."""

    def __init__(self, order_id: str, state: str, action: str, *, subject: str = "order") -> None:
        self.order_id, self.state, self.action = order_id, state, action
        super().__init__(f"{subject} {order_id!r} is {state}: cannot {action}")


class OrderConflict(InvalidOrder):
    """An order id that exists already with other lines (or coupon); the old order stands."""

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        super().__init__(
            f"order {order_id!r} exists with other lines: choose another id, or repeat the same"
        )


class LiveModeMismatch(CommerceError):
    """A test-mode event delivered to a live-mode shop, or the reverse."""

    def __init__(self, event_id: str, event_livemode: bool, shop_livemode: bool) -> None:
        self.event_id = event_id
        self.event_livemode, self.shop_livemode = event_livemode, shop_livemode

        def mode(live: bool) -> str:
            return "live" if live else "test"

        super().__init__(
            f"event {event_id!r} is {mode(event_livemode)}-mode "
            f"but the shop runs in {mode(shop_livemode)} mode"
        )


class BadSignature(CommerceError):
    """A webhook signature check failed; the body was not parsed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"bad webhook signature: {reason}")


class SignatureMissing(BadSignature):
    """No signature header, or no v1 signature in it."""


class SignatureMalformed(BadSignature):
    """The signature header cannot be parsed."""


class SignatureMismatch(BadSignature):
    """No v1 signature in the header matches the body and secret."""


class SignatureExpired(BadSignature):
    """The signature is authentic but its timestamp is outside the tolerance."""

    def __init__(self, timestamp: int, now: int, tolerance: int) -> None:
        self.timestamp, self.now, self.tolerance = timestamp, now, tolerance
        age = now - timestamp
        when = f"{age}s old" if age >= 0 else f"{-age}s in the future"
        super().__init__(f"timestamp {timestamp} is {when} (tolerance {tolerance}s)")


class MalformedEvent(CommerceError):
    """A webhook body that is not a valid event; the message names the field."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"malformed event: {reason}")


class BodyTooLarge(CommerceError):
    """A webhook body over the size limit, rejected before parsing.

    `at_least` says `size` is only what was read before giving up (a stream is never read
    past the limit), not the whole body.
    """

    def __init__(self, size: int, limit: int, *, at_least: bool = False) -> None:
        self.size, self.limit, self.at_least = size, limit, at_least
        shown = f"at least {size}" if at_least else f"{size}"
        super().__init__(f"webhook body is {shown} bytes, over the {limit}-byte limit")


NO_PROVIDER_HINT = "pass provider= to Shop.open (FakeProvider() for tests and demos)"


class NoPaymentProvider(CommerceError):
    """No provider can take this order: none was chosen, or the fake on a live-mode shop.

    `reason` says which; `hint` how to choose one (the CLI names its own ways).
    """

    def __init__(
        self, reason: str = "no payment provider is configured", hint: str = NO_PROVIDER_HINT
    ) -> None:
        self.reason, self.hint = reason, hint
        super().__init__(f"{reason}: {hint}" if hint else reason)


class MissingProviderKey(NoPaymentProvider):
    """The chosen provider needs keys (`missing`, environment variable names) not given."""

    def __init__(self, provider: str, missing: Sequence[str]) -> None:
        self.provider, self.missing = provider, list(missing)
        names = " and ".join(self.missing)
        super().__init__(f"payment provider {provider} needs {names} in the environment", "")


class ProviderError(CommerceError, StepFailed):
    """A payment provider call failed; `kind` is stable, `retryable` drives retries.

    It is a flowlib `StepFailed`, so a handler can raise it and the engine records it and
    applies the request's retry policy; `provider_error` rebuilds it from `kind`.
    """

    KIND: ClassVar[str] = "provider_error"
    RETRYABLE: ClassVar[bool] = False

    def __init__(self, message: str = "", code: str | None = None) -> None:
        self.code = code
        super().__init__(self.KIND, message, retryable=self.RETRYABLE)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.code))


class CardDeclined(ProviderError):
    """The card was declined: final for this attempt (the customer may try again)."""

    KIND = "card_declined"


class RateLimited(ProviderError):
    """The provider asked us to slow down: retry with backoff."""

    KIND = "rate_limited"
    RETRYABLE = True


class ProviderUnavailable(ProviderError):
    """Network failure or a provider outage: retry with backoff."""

    KIND = "provider_unavailable"
    RETRYABLE = True


class InvalidRequest(ProviderError):
    """The provider refused the request itself (unknown id, idempotency reuse): final."""

    KIND = "invalid_request"


PROVIDER_ERRORS: dict[str, type[ProviderError]] = {
    cls.KIND: cls for cls in (CardDeclined, RateLimited, ProviderUnavailable, InvalidRequest)
}


def provider_error(kind: str, message: str = "", code: str | None = None) -> ProviderError:
    """The typed provider error for a stable `kind` (e.g. from a recorded failure)."""
    cls = PROVIDER_ERRORS.get(kind)
    if cls is None:
        known = ", ".join(sorted(PROVIDER_ERRORS))
        raise ValueError(f"unknown provider error kind {kind!r} (known: {known})")
    return cls(message, code)
