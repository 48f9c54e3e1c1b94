"""A shop's settings, and how they are kept: as events in the ledger, so every process agrees."""

from __future__ import annotations

import msgspec

from commerce.errors import InvalidConfig
from commerce.limits import MAX_PAYMENT_TIMEOUT, MAX_REVIEW_TIMEOUT, MIN_PAYMENT_TIMEOUT
from commerce.pricing import check_rate
from commerce.providers.choose import PROVIDER_NAMES
from ledger import Ledger

CONFIG_STREAM = "shop:config"
_TIMEOUT_BOUNDS = {
    "payment_timeout_seconds": (MIN_PAYMENT_TIMEOUT, MAX_PAYMENT_TIMEOUT),
    "review_timeout_seconds": (MIN_PAYMENT_TIMEOUT, MAX_REVIEW_TIMEOUT),
}


class ShopConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Live or test mode, the exclusive tax rate, how long an order may wait for payment,
    how long a payment may stay held for review before it is refunded, and the payment
    provider the command line takes orders through (by name: its keys are never recorded)."""

    livemode: bool = False
    tax_rate_bp: int = 0
    payment_timeout_seconds: int = 1800
    review_timeout_seconds: int = 14 * 24 * 3600
    provider: str | None = None

    def __post_init__(self) -> None:
        check_rate(self.tax_rate_bp)
        if self.provider is not None and self.provider not in PROVIDER_NAMES:
            known = ", ".join(PROVIDER_NAMES)
            raise InvalidConfig("provider", self.provider, f"must be one of {known}")
        for setting, (low, high) in _TIMEOUT_BOUNDS.items():
            timeout = getattr(self, setting)
            if (
                isinstance(timeout, bool)
                or not isinstance(timeout, int)
                or not low <= timeout <= high
            ):
                raise InvalidConfig(setting, timeout, f"must be whole seconds in {low}..{high}")


class ShopConfigured(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The shop's settings from now on (the last of these in the ledger is in force)."""

    config: ShopConfig


_decode = msgspec.json.Decoder(ShopConfigured).decode


def recorded_config(ledger: Ledger) -> ShopConfig | None:
    """The settings last recorded in the ledger, if any.

    Settings recorded before today's bounds that fall outside them are an `InvalidConfig`
    (`Shop.open(path, config=...)` still opens the file, to `configure` new ones).
    """
    records = ledger.records(CONFIG_STREAM)
    if not records:
        return None
    try:
        return _decode(records[-1].data).config
    except msgspec.ValidationError as exc:
        where = f"recorded at position {records[-1].position}"
        raise InvalidConfig("the shop settings", where, str(exc)) from exc


def record_config(ledger: Ledger, config: ShopConfig) -> bool:
    """Record `config` as the shop's settings; False if they were already in force."""
    with ledger.transaction():
        try:
            current = recorded_config(ledger)
        except InvalidConfig:
            current = None  # recorded out of today's bounds: these replace them
        if current == config:
            return False
        ledger.append(CONFIG_STREAM, [ShopConfigured(config=config)])
    return True
