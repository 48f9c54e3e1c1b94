"""A shop's settings, and how they are kept: as events in the ledger, so every process agrees."""

from __future__ import annotations

import msgspec

from commerce.errors import InvalidConfig
from commerce.pricing import check_rate
from ledger import Ledger

CONFIG_STREAM = "shop:config"


class ShopConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Live or test mode, the exclusive tax rate, how long an order may wait for payment,
    and how long a payment may stay held for review before it is refunded."""

    livemode: bool = False
    tax_rate_bp: int = 0
    payment_timeout_seconds: int = 1800
    review_timeout_seconds: int = 14 * 24 * 3600

    def __post_init__(self) -> None:
        check_rate(self.tax_rate_bp)
        for setting in ("payment_timeout_seconds", "review_timeout_seconds"):
            timeout = getattr(self, setting)
            if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
                raise InvalidConfig(setting, timeout, "must be whole seconds >= 1")


class ShopConfigured(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The shop's settings from now on (the last of these in the ledger is in force)."""

    config: ShopConfig


_decode = msgspec.json.Decoder(ShopConfigured).decode


def recorded_config(ledger: Ledger) -> ShopConfig | None:
    """The settings last recorded in the ledger, if any."""
    records = ledger.records(CONFIG_STREAM)
    return _decode(records[-1].data).config if records else None


def record_config(ledger: Ledger, config: ShopConfig) -> bool:
    """Record `config` as the shop's settings; False if they were already in force."""
    with ledger.transaction():
        if recorded_config(ledger) == config:
            return False
        ledger.append(CONFIG_STREAM, [ShopConfigured(config=config)])
    return True
