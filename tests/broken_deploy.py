"""A bad deploy for the tests: the order flow's first step changed, then the fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from commerce.flows import ORDER_FLOW
from commerce.requests import PlaceOrder, QuoteOrder
from flowlib import REGISTRY, Flow


def _edited(order: PlaceOrder) -> Flow[str]:
    yield QuoteOrder(order_id=order.order_id, lines=order.lines, coupon="EDITED")
    return "never"


@contextmanager
def deployed_broken_code() -> Iterator[None]:
    """Every running order diverges inside the block; the original is back after it."""
    original = REGISTRY.get(ORDER_FLOW)
    REGISTRY.register(ORDER_FLOW, original.version, _edited)
    try:
        yield
    finally:
        REGISTRY.register(ORDER_FLOW, original.version, original.fn)
