"""Fixtures for the commerce integration tests: a real shop file and a controllable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from shop_helpers import ShopClock, stocked_shop

from commerce import FakeProvider, Shop


@pytest.fixture
def shop_clock() -> ShopClock:
    return ShopClock()


@pytest.fixture
def shop(tmp_path: Path, shop_clock: ShopClock) -> Iterator[Shop]:
    """An empty shop on a real SQLite file in `tmp_path`, on the test's clock."""
    with Shop.open(tmp_path / "shop.db", provider=FakeProvider(), clock=shop_clock) as opened:
        yield opened


@pytest.fixture
def stocked(shop: Shop) -> Shop:
    """The shop with the standard catalog (MUG 10, TEE 5 in EUR; YEN 3 in JPY)."""
    stocked_shop(shop)
    return shop
