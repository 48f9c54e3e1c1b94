"""A shop on SumUp, end to end over real HTTP to the stand-in: start an order (a hosted
checkout), pay it, settle it from the signed webhook and from the legacy notice (only once
SumUp's API confirms it), refund a late payment, reconcile a lost one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from shop_helpers import ShopClock, check_all, count_events, events_of, stock, stocked_shop
from sumup_standin import API_KEY, MERCHANT_CODE, OPENAPI, SumUpStandIn

from commerce import Shop, SumUpProvider, SumUpWebhooks
from commerce.providers.sumup_webhooks import SIGNATURE_HEADER, sign

SECRET = "sumup_whsec_test"


@pytest.fixture
def standin() -> Iterator[SumUpStandIn]:
    if not OPENAPI.is_dir():
        pytest.skip("the recorded SumUp shapes (../shared/fixtures/payments) are not here")
    server = SumUpStandIn(hang_seconds=1.5).start()
    yield server
    server.stop()


@pytest.fixture
def sumup(standin: SumUpStandIn) -> SumUpProvider:
    return SumUpProvider(API_KEY, MERCHANT_CODE, base_url=standin.url, timeout=0.5)


@pytest.fixture
def source(sumup: SumUpProvider) -> SumUpWebhooks:
    return SumUpWebhooks(SECRET, sumup)


@pytest.fixture
def shop(tmp_path: Path, shop_clock: ShopClock, sumup: SumUpProvider) -> Iterator[Shop]:
    with Shop.open(tmp_path / "sumup.db", clock=shop_clock, provider=sumup) as opened:
        stocked_shop(opened)
        yield opened


def _updated(event_id: str, checkout_id: str, reference: str, status: str) -> bytes:
    return (
        f'{{"id": "{event_id}", "event_type": "checkout.status.updated", "payload":'
        f' {{"checkout_id": "{checkout_id}", "reference": "{reference}", "status": "{status}"}},'
        ' "timestamp": "2026-03-01T12:00:00.000+00:00"}'
    ).encode()


def _legacy(checkout_id: str) -> bytes:
    return f'{{"event_type": "CHECKOUT_STATUS_CHANGED", "id": "{checkout_id}"}}'.encode()


def _signed(shop: Shop, body: bytes) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(body, SECRET, int(shop.clock().timestamp()))}


def _started(shop: Shop, order_id: str, sku: str = "MUG", quantity: int = 2) -> str:
    row = shop.start_order([(sku, quantity)], order_id=order_id).order
    assert row.status == "awaiting_payment" and row.intent_id is not None, row
    return row.intent_id


def test_an_order_is_taken_paid_and_settled_through_sumup(
    standin: SumUpStandIn, shop: Shop, source: SumUpWebhooks
) -> None:
    checkout_id = _started(shop, "ord_u1")
    checkout = standin.checkouts[checkout_id]
    assert (checkout["checkout_reference"], str(checkout["amount"])) == ("ord_u1", "25.00")
    (created,) = events_of(shop, "PaymentIntentCreated")
    assert created.provider == "sumup"
    standin.pay(checkout_id)
    body = _updated("ev1", checkout_id, "ord_u1", "PAID")
    result = shop.receive(source, body, _signed(shop, body))
    assert (result.outcome, result.order_status) == ("settled", "fulfilled"), result
    again = shop.receive(source, _legacy(checkout_id), {})  # the old notice, confirmed paid
    assert again.outcome == "already_settled", again
    assert count_events(shop, "PaymentReceived", "ord_u1") == 1
    assert stock(shop, "MUG") == (8, 0, 2)
    check_all(shop)


def test_the_legacy_notice_alone_settles_once_confirmed(
    standin: SumUpStandIn, shop: Shop, source: SumUpWebhooks
) -> None:
    checkout_id = _started(shop, "ord_u2")
    early = shop.receive(source, _legacy(checkout_id), {})  # not paid yet: nothing happens
    assert early.outcome == "ignored" and shop.order("ord_u2").order.status == "awaiting_payment"
    standin.pay(checkout_id)
    paid = shop.receive(source, _legacy(checkout_id), {})
    assert (paid.outcome, paid.order_status) == ("settled", "fulfilled"), paid
    check_all(shop)


def test_a_forged_legacy_notice_changes_nothing(
    standin: SumUpStandIn, shop: Shop, source: SumUpWebhooks
) -> None:
    checkout_id = _started(shop, "ord_u3")
    forged = shop.receive(source, _legacy("c_forged"), {})
    assert forged.outcome == "ignored" and forged.order_id is None
    unpaid = shop.receive(source, _legacy(checkout_id), {})  # real id, but SumUp says pending
    assert unpaid.outcome == "ignored"
    assert shop.order("ord_u3").order.status == "awaiting_payment"
    assert count_events(shop, "PaymentReceived") == 0


def test_a_late_payment_is_refunded_through_sumup(
    standin: SumUpStandIn, shop: Shop, source: SumUpWebhooks
) -> None:
    checkout_id = _started(shop, "ord_u4", "TEE", 1)
    shop.cancel_order("ord_u4")
    standin.pay(checkout_id)  # the customer paid the page they still had open
    body = _updated("ev4", checkout_id, "ord_u4", "PAID")
    result = shop.receive(source, body, _signed(shop, body))
    assert result.outcome == "refunded", result
    ((_, refunded),) = standin.refunds
    assert refunded == Decimal("20.00")
    assert shop.order("ord_u4").order.refunded == 2000
    check_all(shop)


def test_reconcile_settles_a_sumup_payment_whose_webhook_was_lost(
    standin: SumUpStandIn, shop: Shop, shop_clock: ShopClock, source: SumUpWebhooks
) -> None:
    checkout_id = _started(shop, "ord_u5")
    standin.pay(checkout_id)  # the webhook never comes
    shop_clock.advance(600)
    (done,) = shop.reconcile(older_than=timedelta(minutes=5))
    assert (done.provider_status, done.outcome) == ("succeeded", "settled"), done
    body = _updated("ev5", checkout_id, "ord_u5", "PAID")
    assert shop.receive(source, body, _signed(shop, body)).outcome == "already_settled"
    assert count_events(shop, "PaymentReceived", "ord_u5") == 1
    check_all(shop)


def test_a_failed_checkout_is_a_failed_attempt(
    standin: SumUpStandIn, shop: Shop, source: SumUpWebhooks
) -> None:
    checkout_id = _started(shop, "ord_u6")
    standin.fail(checkout_id)
    body = _updated("ev6", checkout_id, "ord_u6", "FAILED")
    result = shop.receive(source, body, _signed(shop, body))
    assert (result.outcome, result.order_status) == ("recorded", "awaiting_payment"), result
    assert count_events(shop, "PaymentFailed", "ord_u6") == 1
