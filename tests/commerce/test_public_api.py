"""commerce's public names are pinned: a change here is a deliberate API change."""

from __future__ import annotations

import commerce
import commerce.providers

EXPORTED = [
    "MAX_BODY",
    "MAX_JSON_DEPTH",
    "MAX_PAYMENT_TIMEOUT",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "MAX_REVIEW_TIMEOUT",
    "MAX_STOCK",
    "MAX_TAX_RATE_BP",
    "MIN_PAYMENT_TIMEOUT",
    "ORDER_STATUSES",
    "PROVIDER_KEYS",
    "PROVIDER_NAMES",
    "STRIPE_API_VERSION",
    "AnyStripeEvent",
    "BadSignature",
    "BodyTooLarge",
    "CardDeclined",
    "ChargeRefunded",
    "ChargeSucceeded",
    "CheckoutCompleted",
    "CommerceError",
    "Coupon",
    "CouponRejected",
    "CurrencyMismatch",
    "DuplicateSku",
    "EmptyOrder",
    "FakeProvider",
    "FloatNotAllowed",
    "IgnoredEvent",
    "IntentEvent",
    "InvalidConfig",
    "InvalidMoney",
    "InvalidOrder",
    "InvalidQuantity",
    "InvalidRequest",
    "InvalidTaxRate",
    "InvalidTransition",
    "Line",
    "LiveModeMismatch",
    "MalformedEvent",
    "MissingProviderKey",
    "Money",
    "NoPaymentProvider",
    "OrderConflict",
    "OrderRow",
    "OrderView",
    "OutOfStock",
    "ParkedEvent",
    "PaymentIntent",
    "PaymentProvider",
    "ProductRow",
    "ProviderError",
    "ProviderUnavailable",
    "Quote",
    "QuoteLine",
    "RateLimited",
    "Reconciled",
    "Refund",
    "SettleResult",
    "Settler",
    "Shop",
    "ShopConfig",
    "SignatureExpired",
    "SignatureMalformed",
    "SignatureMismatch",
    "SignatureMissing",
    "StripeEvent",
    "StripeProvider",
    "TaxRate",
    "TimelineEntry",
    "UnknownCurrency",
    "UnknownOrder",
    "UnknownProduct",
    "decode_event",
    "format_money",
    "from_major",
    "parse_money",
    "provider_error",
    "provider_from",
    "quote",
    "refund_providers",
    "sign",
    "to_major",
    "verify",
]


def test_exported_members() -> None:
    assert commerce.__all__ == EXPORTED
    for name in commerce.__all__:
        assert hasattr(commerce, name), name


def test_the_providers_are_the_same_objects_from_either_place() -> None:
    for name in commerce.providers.__all__:
        assert getattr(commerce, name) is getattr(commerce.providers, name)
