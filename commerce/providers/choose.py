"""Choosing providers by name, with their keys from the environment: the one place they are built.

```
fake    no keys (moves no money: tests and the demo)
stripe  STRIPE_API_KEY                       (STRIPE_API_BASE: another address, a stand-in)
sumup   SUMUP_API_KEY, SUMUP_MERCHANT_CODE   (SUMUP_API_BASE: likewise; SUMUP_RETURN_URL: where
                                             SumUp sends its legacy notices)
```
Keys are read from the environment only, never recorded in the ledger.
"""

from __future__ import annotations

from collections.abc import Mapping

from commerce.errors import MissingProviderKey, NoPaymentProvider
from commerce.providers.base import PaymentProvider
from commerce.providers.fake import FakeProvider
from commerce.providers.stripe import STRIPE_API_BASE, StripeProvider

PROVIDER_NAMES: tuple[str, ...] = ("fake", "stripe", "sumup")
"""The providers orderflow can build by name."""
PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "fake": (),
    "stripe": ("STRIPE_API_KEY",),
    "sumup": ("SUMUP_API_KEY", "SUMUP_MERCHANT_CODE"),
}
"""The environment variables each provider needs."""


def provider_from(
    name: str, environ: Mapping[str, str], *, livemode: bool = False
) -> PaymentProvider:
    """The provider called `name`, keyed from `environ`.

    An unknown name is `NoPaymentProvider`; a missing key is `MissingProviderKey`.
    `livemode` is the shop's mode, for the providers whose keys do not say it.
    """
    if name not in PROVIDER_KEYS:
        known = ", ".join(PROVIDER_NAMES)
        raise NoPaymentProvider(f"unknown payment provider {name!r}", f"choose one of {known}")
    missing = [key for key in PROVIDER_KEYS[name] if not environ.get(key)]
    if missing:
        raise MissingProviderKey(name, missing)
    try:
        if name == "stripe":
            base = environ.get("STRIPE_API_BASE") or STRIPE_API_BASE
            return StripeProvider(environ["STRIPE_API_KEY"], base_url=base)
        if name == "sumup":
            return _sumup(environ, livemode=livemode)
    except ValueError as exc:  # a base address that is not one
        raise NoPaymentProvider(f"payment provider {name}: {exc}", "") from exc
    return FakeProvider(livemode=livemode)


def _sumup(environ: Mapping[str, str], *, livemode: bool) -> PaymentProvider:
    from commerce.providers.sumup import SUMUP_API_BASE, SumUpProvider  # only when chosen

    base = environ.get("SUMUP_API_BASE") or SUMUP_API_BASE
    return SumUpProvider(
        environ["SUMUP_API_KEY"],
        environ["SUMUP_MERCHANT_CODE"],
        base_url=base,
        livemode=livemode,
        return_url=environ.get("SUMUP_RETURN_URL") or None,
    )


def refund_providers(
    environ: Mapping[str, str], *, besides: str | None = None, livemode: bool = False
) -> list[PaymentProvider]:
    """Every provider other than `besides` whose keys `environ` holds (the fake always).

    They refund and cancel the intents recorded under their names, so a shop that moved
    from one provider to another still gives back what the first one took. The fake needs
    no keys, and can only ever be asked about intents recorded as the fake's (no money).
    """
    found = []
    for name in PROVIDER_NAMES:
        if name == besides or not all(environ.get(key) for key in PROVIDER_KEYS[name]):
            continue
        try:
            found.append(provider_from(name, environ, livemode=livemode))
        except NoPaymentProvider:  # a bad base address: its refunds keep retrying
            continue
    return found
