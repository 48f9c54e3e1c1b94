"""Fixtures for the commerce integration tests: a real shop and a controllable clock.

The shop is on SQLite, and on PostgreSQL too in tests marked `both_backends`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from backends import Targets
from shop_helpers import ShopClock, stocked_shop

from commerce import FakeProvider, Shop


@pytest.fixture
def shop_clock() -> ShopClock:
    return ShopClock()


@pytest.fixture
def shop(targets: Targets, shop_clock: ShopClock) -> Iterator[Shop]:
    """An empty shop on the test's backend (a real file, or a PostgreSQL schema), on its clock."""
    with Shop.open(targets.new(), provider=FakeProvider(), clock=shop_clock) as opened:
        yield opened


@pytest.fixture
def stocked(shop: Shop) -> Shop:
    """The shop with the standard catalog (MUG 10, TEE 5 in EUR; YEN 3 in JPY)."""
    stocked_shop(shop)
    return shop
