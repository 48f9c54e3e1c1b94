"""A popular SKU's stock row is locked by a settle for its commit alone (PostgreSQL).

Every order of a SKU moves its row in `products` when it reserves and when it settles, and
PostgreSQL keeps a changed row locked until the transaction ends. Written in the middle of
a settle, the move would make every other settle of that SKU wait through the rest of it
(a flash sale's settles would queue on one row); written just before the commit
(`Tx.at_commit`), the row is locked for the commit alone.
"""

from __future__ import annotations

import pytest
from pg import fresh_schema
from shop_helpers import ShopClock, body_for, deliver, stock, stocked_shop

from commerce import FakeProvider, Shop

psycopg = pytest.importorskip("psycopg")


def test_a_settle_leaves_the_stock_row_unlocked_until_its_commit() -> None:
    with fresh_schema() as dsn, Shop.open(dsn, provider=FakeProvider(), clock=ShopClock()) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        body = body_for(shop, "o1", "payment_intent.succeeded", event_id="evt_hot_1")
        with psycopg.connect(dsn, autocommit=True) as other:
            other.execute("SET lock_timeout = '2s'")
            with shop.ledger.transaction():
                assert deliver(shop, body).outcome == "settled"
                # the settle is written but not committed: another settle's move of this
                # row goes through at once (it would time out if the row were locked)
                other.execute("UPDATE products SET sold = sold WHERE sku = 'MUG'")
                assert stock(shop, "MUG") == (8, 0, 2)  # a read in the transaction sees it
        assert stock(shop, "MUG") == (8, 0, 2)
        assert shop.ledger.verify().ok
