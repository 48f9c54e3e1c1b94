"""Shop settings live in the ledger: every process that opens it uses the same ones."""

from __future__ import annotations

import pytest
from backends import Targets

from commerce import FakeProvider, InvalidConfig, InvalidTaxRate, Money, Shop, ShopConfig

pytestmark = pytest.mark.both_backends


def test_defaults_until_settings_are_recorded(targets: Targets) -> None:
    with Shop.open(targets.new("s")) as shop:
        assert shop.config == ShopConfig()


def test_recorded_settings_apply_at_once_and_to_every_later_open(targets: Targets) -> None:
    path = targets.new()
    taxed = ShopConfig(tax_rate_bp=2000, payment_timeout_seconds=600)
    with Shop.open(path, provider=FakeProvider()) as shop:
        assert shop.configure(taxed) is True
        assert shop.configure(taxed) is False  # already in force: nothing written
        shop.add_product("MUG", "Mug", Money(1000, "EUR"), stock=5)
        assert shop.start_order([("MUG", 1)], order_id="o1").quote.tax == 200
    with Shop.open(path, provider=FakeProvider()) as other:
        assert other.config == taxed
        assert other.start_order([("MUG", 1)], order_id="o2").quote.total == 1200
        assert other.ledger.verify().ok


def test_an_explicit_config_is_for_that_object_only(targets: Targets) -> None:
    path = targets.new()
    with Shop.open(path, config=ShopConfig(livemode=True)) as shop:
        assert shop.config.livemode is True
        assert shop.ledger.count() == 0  # nothing recorded
    with Shop.open(path) as shop:
        assert shop.config.livemode is False


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(InvalidConfig, match="payment_timeout_seconds"):
        ShopConfig(payment_timeout_seconds=0)
    with pytest.raises(InvalidTaxRate):
        ShopConfig(tax_rate_bp=-1)
