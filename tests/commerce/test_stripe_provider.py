"""The Stripe provider over real HTTP to a local stand-in: requests, idempotency, error mapping,
and a shop that starts, settles and refunds orders through it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from backends import Targets
from shop_helpers import ShopClock, count_events, deliver, events_of, stocked_shop
from stripe_standin import API_KEY, OPENAPI, StripeStandIn

from commerce import (
    STRIPE_API_VERSION,
    CardDeclined,
    FakeProvider,
    InvalidRequest,
    Money,
    ProviderUnavailable,
    RateLimited,
    Shop,
    StripeProvider,
)

TIMEOUT = 0.5


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    if not OPENAPI.is_dir():
        pytest.skip("the recorded Stripe shapes (../shared/fixtures/payments) are not here")
    server = StripeStandIn(hang_seconds=TIMEOUT * 3).start()
    yield server
    server.stop()


@pytest.fixture
def stripe(standin: StripeStandIn) -> StripeProvider:
    return StripeProvider(API_KEY, base_url=standin.url, timeout=TIMEOUT)


def test_create_sends_form_key_metadata_and_pinned_version(
    standin: StripeStandIn, stripe: StripeProvider
) -> None:
    intent = stripe.create_intent("ord_1", Money(1250, "EUR"), idempotency_key="ord_1:3")
    assert (intent.order_id, intent.amount, intent.currency) == ("ord_1", 1250, "EUR")
    assert intent.intent_id.startswith("pi_") and intent.status == "requires_payment_method"
    method, path, form, headers = standin.requests[-1]
    assert (method, path) == ("POST", "/v1/payment_intents")
    assert form["amount"] == "1250" and form["currency"] == "eur"
    assert form["metadata[order_id]"] == "ord_1"
    assert headers["idempotency-key"] == "ord_1:3"
    assert headers["stripe-version"] == STRIPE_API_VERSION
    assert headers["content-type"] == "application/x-www-form-urlencoded"


def test_retrieve_and_cancel(stripe: StripeProvider) -> None:
    intent = stripe.create_intent("ord_2", Money(500, "EUR"), idempotency_key="k-create")
    assert stripe.retrieve(intent.intent_id) == intent
    canceled = stripe.cancel(intent.intent_id, idempotency_key="k-cancel")
    assert canceled.status == "canceled" and canceled.order_id == "ord_2"
    with pytest.raises(InvalidRequest) as info:
        stripe.cancel(intent.intent_id, idempotency_key="k-cancel-again")
    assert info.value.code == "payment_intent_unexpected_state"


def test_same_key_same_params_charges_once(standin: StripeStandIn, stripe: StripeProvider) -> None:
    first = stripe.create_intent("ord_3", Money(700, "EUR"), idempotency_key="same")
    again = stripe.create_intent("ord_3", Money(700, "EUR"), idempotency_key="same")
    assert again == first and standin.executed == 1


def test_same_key_other_params_is_an_idempotency_error(stripe: StripeProvider) -> None:
    stripe.create_intent("ord_4", Money(700, "EUR"), idempotency_key="reused")
    with pytest.raises(InvalidRequest) as info:
        stripe.create_intent("ord_4", Money(800, "EUR"), idempotency_key="reused")
    assert info.value.code == "idempotency_error" and not info.value.retryable
    assert "same parameters" in str(info.value)


def test_card_error_is_a_final_decline(standin: StripeStandIn, stripe: StripeProvider) -> None:
    standin.fail_next("card_declined")
    with pytest.raises(CardDeclined) as info:
        stripe.create_intent("ord_5", Money(700, "EUR"), idempotency_key="k5")
    assert info.value.code == "generic_decline" and not info.value.retryable
    assert "Your card was declined." in str(info.value)


@pytest.mark.parametrize(
    ("fault", "error"),
    [("rate_limited", RateLimited), ("server_error", ProviderUnavailable)],
)
def test_429_and_5xx_are_retryable_and_a_retry_charges_once(
    standin: StripeStandIn, stripe: StripeProvider, fault: str, error: type[Exception]
) -> None:
    standin.fail_next(fault)
    with pytest.raises(error) as info:
        stripe.create_intent("ord_6", Money(700, "EUR"), idempotency_key="k6")
    assert getattr(info.value, "retryable", False)
    intent = stripe.create_intent("ord_6", Money(700, "EUR"), idempotency_key="k6")
    assert standin.executed == 1 and intent.intent_id in standin.intents


def test_a_hang_past_the_timeout_is_unavailable_and_the_retry_gets_the_first_answer(
    standin: StripeStandIn, stripe: StripeProvider
) -> None:
    standin.fail_next("hang")
    with pytest.raises(ProviderUnavailable) as info:
        stripe.create_intent("ord_7", Money(700, "EUR"), idempotency_key="k7")
    assert info.value.retryable and info.value.code == "network"
    intent = stripe.create_intent("ord_7", Money(700, "EUR"), idempotency_key="k7")
    assert standin.executed == 1 and list(standin.intents) == [intent.intent_id]


def test_nobody_listening_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = StripeProvider(API_KEY, base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT)
    with pytest.raises(ProviderUnavailable):
        provider.retrieve("pi_nothing")


def test_other_4xx_carry_stripes_message(standin: StripeStandIn) -> None:
    wrong_key = StripeProvider("sk_test_wrong", base_url=standin.url, timeout=TIMEOUT)
    with pytest.raises(InvalidRequest, match="Invalid API Key provided"):
        wrong_key.retrieve("pi_x")
    right = StripeProvider(API_KEY, base_url=standin.url, timeout=TIMEOUT)
    with pytest.raises(InvalidRequest, match="No such payment_intent") as info:
        right.retrieve("pi_unknown")
    assert info.value.code == "resource_missing" and not info.value.retryable


def test_refund_over_http(standin: StripeStandIn, stripe: StripeProvider) -> None:
    intent = stripe.create_intent("ord_8", Money(900, "EUR"), idempotency_key="k8")
    standin.pay(intent.intent_id)
    refund = stripe.refund(intent.intent_id, Money(400, "EUR"), idempotency_key="r8")
    assert (refund.intent_id, refund.amount, refund.currency) == (intent.intent_id, 400, "EUR")
    assert stripe.refund(intent.intent_id, Money(400, "EUR"), idempotency_key="r8") == refund
    with pytest.raises(InvalidRequest) as info:
        stripe.refund(intent.intent_id, Money(600, "EUR"), idempotency_key="r8-more")
    assert info.value.code == "amount_too_large"


def test_the_client_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="API key"):
        StripeProvider("")
    with pytest.raises(ValueError, match="http"):
        StripeProvider(API_KEY, base_url="ftp://example.com")


# -- a shop over the Stripe provider -----------------------------------------------------


@pytest.fixture
def stripe_shop(targets: Targets, shop_clock: ShopClock, stripe: StripeProvider) -> Iterator[Shop]:
    with Shop.open(targets.new(), clock=shop_clock, provider=stripe) as opened:
        stocked_shop(opened)
        yield opened


def test_start_and_pay_through_stripe(standin: StripeStandIn, stripe_shop: Shop) -> None:
    row = stripe_shop.start_order([("MUG", 2)], order_id="ord_s1").order
    assert row.status == "awaiting_payment" and row.intent_id in standin.intents
    assert standin.intents[row.intent_id]["metadata"] == {"order_id": "ord_s1"}
    (created,) = events_of(stripe_shop, "PaymentIntentCreated")
    assert created.provider == "stripe"
    body = standin.pay(row.intent_id, created=int(stripe_shop.clock().timestamp()))
    assert deliver(stripe_shop, body).outcome == "settled"
    assert stripe_shop.order("ord_s1").order.status == "fulfilled"


def test_a_late_payment_is_refunded_through_stripe(
    standin: StripeStandIn, stripe_shop: Shop
) -> None:
    row = stripe_shop.start_order([("TEE", 1)], order_id="ord_s2").order
    stripe_shop.cancel_order("ord_s2")
    deliver(stripe_shop, standin.pay(row.intent_id, created=int(stripe_shop.clock().timestamp())))
    (refund,) = standin.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (row.intent_id, 2000)
    assert stripe_shop.order("ord_s2").order.refunded == 2000


def test_a_create_that_timed_out_is_retried_with_its_key_and_charges_once(
    standin: StripeStandIn, stripe_shop: Shop, shop_clock: ShopClock
) -> None:
    standin.fail_next("hang")
    assert stripe_shop.start_order([("MUG", 1)], order_id="ord_s3").order.status == "placed"
    assert standin.executed == 1  # Stripe made the intent; we never heard
    shop_clock.advance(60)
    stripe_shop.fire_timers()
    row = stripe_shop.order("ord_s3").order
    assert row.status == "awaiting_payment" and list(standin.intents) == [row.intent_id]
    keys = {h["idempotency-key"] for m, p, _, h in standin.requests if p == "/v1/payment_intents"}
    assert len(keys) == 1 and standin.executed == 1


def test_a_decline_at_create_fails_the_order(standin: StripeStandIn, stripe_shop: Shop) -> None:
    standin.fail_next("card_declined")
    row = stripe_shop.start_order([("MUG", 1)], order_id="ord_s4").order
    assert row.status == "failed" and row.intent_id is None


def test_refunds_go_to_the_provider_that_took_the_intent(
    tmp_path: Path, shop_clock: ShopClock, standin: StripeStandIn, stripe: StripeProvider
) -> None:
    fake = FakeProvider()
    path = tmp_path / "moved.db"
    with Shop.open(path, clock=shop_clock, provider=fake) as before:
        stocked_shop(before)
        row = before.start_order([("MUG", 1)], order_id="ord_f1").order
        before.cancel_order("ord_f1")
    intent = fake.intents[row.intent_id or ""]
    late = FakeProvider.event_for(
        intent, "payment_intent.succeeded", event_id="evt_f1", created=shop_clock.ts()
    )
    with Shop.open(path, clock=shop_clock, provider=stripe) as alone:
        deliver(alone, late)  # the fake is not configured here: the refund waits, retrying
        assert count_events(alone, "RefundIssued", "ord_f1") == 0
    with Shop.open(path, clock=shop_clock, provider=stripe, refund_providers=[fake]) as both:
        shop_clock.advance(60)
        both.fire_timers()
        assert count_events(both, "RefundIssued", "ord_f1") == 1
    assert len(fake.refunds) == 1 and standin.refunds == {}


# -- reconciliation ------------------------------------------------------------------------


@pytest.mark.both_backends
def test_reconcile_settles_a_payment_whose_webhook_was_lost(
    standin: StripeStandIn, stripe_shop: Shop, shop_clock: ShopClock
) -> None:
    row = stripe_shop.start_order([("MUG", 1)], order_id="ord_r1").order
    body = standin.pay(row.intent_id or "", created=shop_clock.ts())  # never delivered
    shop_clock.advance(120)
    (done,) = stripe_shop.reconcile(older_than=timedelta(seconds=60))
    assert (done.order_id, done.provider_status, done.outcome) == ("ord_r1", "succeeded", "settled")
    assert stripe_shop.order("ord_r1").order.status == "fulfilled"
    assert stripe_shop.reconcile() == []  # nothing waits any more
    late = deliver(stripe_shop, body)
    assert late.outcome == "already_settled"
    assert count_events(stripe_shop, "PaymentReceived", "ord_r1") == 1


@pytest.mark.both_backends
def test_reconcile_leaves_young_and_unpaid_orders_waiting(
    standin: StripeStandIn, stripe_shop: Shop, shop_clock: ShopClock
) -> None:
    stripe_shop.start_order([("MUG", 1)], order_id="ord_r2")
    assert stripe_shop.reconcile(older_than=timedelta(minutes=5)) == []
    assert not [r for r in standin.requests if r[0] == "GET"]  # not even asked
    shop_clock.advance(600)
    (done,) = stripe_shop.reconcile(older_than=timedelta(minutes=5))
    assert (done.provider_status, done.outcome) == ("requires_payment_method", "waiting")
    assert stripe_shop.order("ord_r2").order.status == "awaiting_payment"


@pytest.mark.both_backends
def test_reconcile_closes_an_intent_cancelled_at_the_provider_and_reports_errors(
    standin: StripeStandIn, stripe: StripeProvider, stripe_shop: Shop
) -> None:
    gone = stripe_shop.start_order([("MUG", 1)], order_id="ord_r3").order
    stripe.cancel(gone.intent_id or "", idempotency_key="dashboard")
    stripe_shop.start_order([("TEE", 1)], order_id="ord_r4")
    standin.fail_next("server_error")  # the first retrieve (ord_r3's) fails
    first = {r.order_id: r for r in stripe_shop.reconcile()}
    assert first["ord_r3"].outcome == "error" and "Stripe 500" in first["ord_r3"].reason
    assert first["ord_r4"].outcome == "waiting"
    again = {r.order_id: r for r in stripe_shop.reconcile()}
    assert again["ord_r3"].provider_status == "canceled"
    assert stripe_shop.order("ord_r3").order.status == "cancelled"
