"""Reliability scenarios the state machine does not reach: moving orders and going on in the
new file, moving closed orders too, and a payment that arrives before its intent is known.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import SECRET, Clock, check_invariants, event_body, intent_of

from commerce import FakeProvider, Money, PaymentIntent, Shop, ShopConfig, sign
from commerce.providers.base import derive_id

CONFIG = ShopConfig(payment_timeout_seconds=600)
SUCCEEDED = "payment_intent.succeeded"


def _open(path: Path, clock: Clock, provider: FakeProvider | None = None) -> Shop:
    return Shop.open(path, clock=clock, provider=provider or FakeProvider(), config=CONFIG)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def source(tmp_path: Path, clock: Clock) -> Iterator[Shop]:
    with _open(tmp_path / "source.db", clock) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=10)
        shop.add_product("BRD", "Bread", Money(399, "EUR"), stock=10)
        yield shop


def _pay(shop: Shop, clock: Clock, order_id: str, event_id: str) -> str:
    body = event_body(intent_of(shop, order_id), SUCCEEDED, event_id, clock.unix)
    return shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET).outcome


def test_moved_orders_continue_in_the_new_file(source: Shop, clock: Clock, tmp_path: Path) -> None:
    source.start_order([("APL", 2), ("BRD", 1)], order_id="paid-there")
    source.start_order([("APL", 3)], order_id="expires-there")
    document = source.export_flows(status="waiting")
    with _open(tmp_path / "target.db", clock) as target:
        target.import_flows(document)
        target.import_flows(document)  # a second import of the same document changes nothing
        check_invariants(target)
        assert _pay(target, clock, "paid-there", "evt_1") == "settled"
        assert _pay(target, clock, "paid-there", "evt_1") == "already_settled"
        clock.advance(601)
        target.fire_timers()
        facts = check_invariants(target)
        assert facts.fulfilled == {"paid-there": 1}
        assert target.order("expires-there").order.status == "expired"
        stock = {p.sku: (p.available, p.reserved, p.sold) for p in target.products()}
        assert stock == {"APL": (3, 0, 2), "BRD": (0, 0, 1)}


def test_moving_every_flow_including_closed_orders(
    source: Shop, clock: Clock, tmp_path: Path
) -> None:
    source.start_order([("APL", 2)], order_id="fulfilled")
    source.start_order([("APL", 1)], order_id="cancelled")
    source.start_order([("BRD", 1)], order_id="waiting")
    _pay(source, clock, "fulfilled", "evt_1")
    source.cancel_order("cancelled")
    document = source.export_flows()
    with _open(tmp_path / "target.db", clock) as target:
        target.import_flows(document)
        check_invariants(target)
        for order_id in ("fulfilled", "cancelled", "waiting"):
            assert target.order(order_id).order == source.order(order_id).order


def test_a_payment_before_its_intent_is_recorded_is_parked_then_fulfils(
    tmp_path: Path, clock: Clock
) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    with _open(tmp_path / "shop.db", clock, provider) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=5)
        assert shop.start_order([("APL", 1)], order_id="o1").order.status == "placed"
        # the intent id derives from the step's idempotency key: the provider knows it already
        early = PaymentIntent(
            intent_id=derive_id("pi_", "o1:2"), order_id="o1", amount=250, currency="EUR"
        )
        body = event_body(early, SUCCEEDED, "evt_early", clock.unix)
        result = shop.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
        assert result.outcome == "recorded" and result.reason.startswith("parked")
        clock.advance(120)
        shop.fire_timers()  # the retry creates the intent; the flow takes the parked payment
        assert shop.order("o1").order.status == "fulfilled"
        assert check_invariants(shop).fulfilled == {"o1": 1}


def test_a_refund_notice_answers_refunded(source: Shop, clock: Clock) -> None:
    source.start_order([("APL", 1)], order_id="o1")
    assert _pay(source, clock, "o1", "evt_paid") == "settled"
    body = event_body(intent_of(source, "o1"), "charge.refunded", "evt_refund", clock.unix)
    result = source.settle_webhook(body, sign(body, SECRET, clock.unix), secret=SECRET)
    assert (result.outcome, result.reason) == ("refunded", "refunded in full")
    assert result.order_status == "refunded"
    check_invariants(source)
