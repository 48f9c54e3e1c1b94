"""What the handlers record during a settle, as the settler folds it: never a rolled-back event."""

from __future__ import annotations

from pathlib import Path

import pytest
from shop_helpers import stocked_shop

from commerce import FakeProvider, Shop
from commerce.events import OrderClosed


def test_a_recording_forgets_the_events_of_a_block_that_was_rolled_back(tmp_path: Path) -> None:
    with Shop.open(tmp_path / "s.db", provider=FakeProvider()) as shop:
        stocked_shop(shop)
        order_id = shop.start_order([("MUG", 1)]).order.order_id
        kept = OrderClosed(order_id=order_id, status="cancelled", reason="kept")
        undone = OrderClosed(order_id=order_id, status="expired", reason="rolled back")
        with shop.ledger.transaction(), shop.handlers.recording() as recorded:
            with pytest.raises(RuntimeError), shop.ledger.transaction():  # a step's savepoint
                shop.handlers._record(order_id, undone)
                assert recorded == [undone]
                raise RuntimeError("the step failed after recording")
            assert recorded == []
            shop.handlers._record(order_id, kept)
            assert recorded == [kept]
        assert shop.order(order_id).order.status == "cancelled"
