"""Webhook settling through `Shop.settle_webhook`: signatures, decoding, deduplication,
ordering, parking, and the typed errors that leave the ledger unchanged."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from backends import Targets
from shop_helpers import (
    SECRET,
    LiveStandIn,
    ShopClock,
    body_for,
    check_all,
    count_events,
    deliver,
    event_types,
    events_of,
    intent_id_for,
    snapshot,
    stock,
    stocked_shop,
    unchanged,
)

from commerce import (
    BodyTooLarge,
    FakeProvider,
    LiveModeMismatch,
    MalformedEvent,
    PaymentIntent,
    Shop,
    ShopConfig,
    SignatureExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
    sign,
)
from commerce.stripe_events import MAX_BODY

SUCCEEDED, FAILED, REFUNDED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
)


@pytest.fixture
def order(stocked: Shop) -> str:
    stocked.start_order([("MUG", 2)], order_id="o1")
    return "o1"


def webhook_row(shop: Shop, event_id: str) -> tuple[object, ...] | None:
    rows = shop.ledger.query(
        "SELECT event_type, outcome, order_id, intent_id FROM webhooks WHERE event_id = ?",
        (event_id,),
    )
    return rows[0] if rows else None


# Deduplication, ordering and parking run on both backends (`both_backends`); signature and
# body checks, decided before any SQL runs, on SQLite alone.

# -- the happy path and deduplication -----------------------------------------------------


@pytest.mark.both_backends
def test_signed_succeeded_settles(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    header = sign(body, SECRET, stocked.clock().timestamp().__int__())
    result = stocked.settle_webhook(body, header, secret=SECRET)
    assert (result.outcome, result.event_id, result.order_id) == ("settled", "evt_1", order)
    assert result.order_status == "fulfilled"
    assert result.reason
    intent = stocked.order(order).order.intent_id
    assert webhook_row(stocked, "evt_1") == (SUCCEEDED, "settled", order, intent)
    check_all(stocked)


@pytest.mark.both_backends
def test_the_same_delivery_again_is_already_settled_and_writes_nothing(
    stocked: Shop, order: str
) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    deliver(stocked, body)
    for _ in range(3):
        with unchanged(stocked):
            again = deliver(stocked, body)
        assert (again.outcome, again.order_id, again.order_status) == (
            "already_settled",
            order,
            "fulfilled",
        )
    assert count_events(stocked, "OrderFulfilled") == 1
    assert stock(stocked, "MUG") == (8, 0, 2)


@pytest.mark.both_backends
def test_dedup_is_permanent_not_a_time_window(
    stocked: Shop, order: str, shop_clock: ShopClock
) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    deliver(stocked, body)
    shop_clock.advance(86400 * 400)
    with unchanged(stocked):
        assert deliver(stocked, body).outcome == "already_settled"


@pytest.mark.both_backends
def test_the_same_event_id_with_another_body_is_a_conflict_and_the_first_body_stands(
    stocked: Shop, order: str
) -> None:
    first = body_for(stocked, order, FAILED, event_id="evt_1")
    deliver(stocked, first)
    other = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    count = stocked.ledger.count()
    result = deliver(stocked, other)
    assert result.outcome == "recorded"
    assert "different body" in result.reason
    assert stocked.ledger.count() == count + 1
    (conflict,) = events_of(stocked, "WebhookConflict")
    assert conflict.event_id == "evt_1"
    (received,) = events_of(stocked, "WebhookReceived")
    assert bytes(received.body) == first
    assert received.event_type == FAILED
    # the conflicting body had no effect
    assert stocked.order(order).order.status == "awaiting_payment"
    assert count_events(stocked, "PaymentReceived") == 0
    check_all(stocked)


@pytest.mark.both_backends
def test_the_same_payment_under_a_second_event_id_settles_once(stocked: Shop, order: str) -> None:
    deliver(stocked, body_for(stocked, order, SUCCEEDED, event_id="evt_1"))
    second = deliver(stocked, body_for(stocked, order, SUCCEEDED, event_id="evt_2"))
    assert second.outcome == "already_settled"
    assert count_events(stocked, "OrderFulfilled") == 1
    assert count_events(stocked, "PaymentReceived") == 1
    assert stocked.order(order).order.paid == 2500
    (superseded,) = events_of(stocked, "PaymentSuperseded")
    assert superseded.event_id == "evt_2"
    assert webhook_row(stocked, "evt_2")[1] == "already_settled"  # type: ignore[index]
    check_all(stocked)


@pytest.mark.both_backends
def test_failed_after_succeeded_is_ignored_as_superseded(stocked: Shop, order: str) -> None:
    deliver(stocked, body_for(stocked, order, SUCCEEDED, event_id="evt_1"))
    result = deliver(stocked, body_for(stocked, order, FAILED, event_id="evt_0"))
    assert result.outcome == "ignored"
    assert "superseded" in result.reason
    assert stocked.order(order).order.status == "fulfilled"
    assert count_events(stocked, "PaymentFailed") == 0
    (superseded,) = events_of(stocked, "PaymentSuperseded")
    assert (superseded.event_id, superseded.event_type) == ("evt_0", FAILED)
    check_all(stocked)


@pytest.mark.both_backends
def test_succeeded_after_a_refund_is_not_acted_on(stocked: Shop, order: str) -> None:
    stocked.cancel_order(order)
    deliver(stocked, body_for(stocked, order, SUCCEEDED, event_id="evt_1"))  # refunded
    assert stocked.order(order).order.status == "refunded"
    result = deliver(stocked, body_for(stocked, order, SUCCEEDED, event_id="evt_2"))
    assert result.outcome == "already_settled"
    assert len(stocked.provider.refunds) == 1  # type: ignore[attr-defined]
    assert count_events(stocked, "OrderFulfilled") == 0
    check_all(stocked)


@pytest.mark.both_backends
def test_failed_attempts_under_several_event_ids_are_each_recorded(
    stocked: Shop, order: str
) -> None:
    for i in range(3):
        assert deliver(stocked, body_for(stocked, order, FAILED, event_id=f"evt_f{i}")).outcome == (
            "recorded"
        )
    assert count_events(stocked, "PaymentFailed") == 3
    assert deliver(stocked, body_for(stocked, order, SUCCEEDED, event_id="evt_s")).outcome == (
        "settled"
    )


@pytest.mark.parametrize("kind", ["payment_intent.created", "payment_intent.processing"])
@pytest.mark.both_backends
def test_other_intent_events_are_ignored_but_recorded(stocked: Shop, order: str, kind: str) -> None:
    raw = json.loads(body_for(stocked, order, FAILED, event_id="evt_x"))
    raw["type"] = kind
    body = json.dumps(raw).encode()
    result = deliver(stocked, body)
    assert result.outcome == "ignored"
    assert webhook_row(stocked, "evt_x")[:2] == (kind, "ignored")  # type: ignore[index]
    assert stocked.order(order).order.status == "awaiting_payment"
    with unchanged(stocked):
        assert deliver(stocked, body).outcome == "already_settled"


@pytest.mark.both_backends
def test_refund_for_an_unknown_intent_is_ignored_and_recorded(stocked: Shop) -> None:
    intent = PaymentIntent(intent_id="pi_unknown", order_id="x", amount=100, currency="EUR")
    body = FakeProvider.event_for(intent, REFUNDED, event_id="evt_r", created=0)
    result = deliver(stocked, body)
    assert result.outcome == "ignored"
    assert webhook_row(stocked, "evt_r") is not None
    check_all(stocked)


# -- bad deliveries: typed errors, ledger unchanged ----------------------------------------------


def test_missing_signature(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    for header in (None, "", "   "):
        with unchanged(stocked), pytest.raises(SignatureMissing):
            stocked.settle_webhook(body, header, secret=SECRET)
    with unchanged(stocked), pytest.raises(SignatureMissing):
        stocked.settle_webhook(body, f"t={int(stocked.clock().timestamp())},v0=abc", secret=SECRET)


def test_invalid_signature(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    now = int(stocked.clock().timestamp())
    with unchanged(stocked), pytest.raises(SignatureMismatch):
        stocked.settle_webhook(body, sign(body, "whsec_other", now), secret=SECRET)
    with unchanged(stocked), pytest.raises(SignatureMalformed):
        stocked.settle_webhook(body, "garbage", secret=SECRET)
    with unchanged(stocked), pytest.raises(SignatureMismatch):
        stocked.settle_webhook(body, f"t={now},v1={'0' * 64}", secret=SECRET)
    assert stocked.order(order).order.status == "awaiting_payment"


def test_one_good_signature_among_several_is_enough(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    now = int(stocked.clock().timestamp())
    good = sign(body, SECRET, now).split(",")[1]
    header = f"t={now},v1={'f' * 64},{good}"
    assert stocked.settle_webhook(body, header, secret=SECRET).outcome == "settled"


def test_tampered_body(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    header = sign(body, SECRET, int(stocked.clock().timestamp()))
    tampered = body.replace(b'"amount":2500', b'"amount":2600')
    assert tampered != body
    with unchanged(stocked), pytest.raises(SignatureMismatch):
        stocked.settle_webhook(tampered, header, secret=SECRET)
    with unchanged(stocked), pytest.raises(SignatureMismatch):
        stocked.settle_webhook(body + b" ", header, secret=SECRET)


@pytest.mark.parametrize("offset", [-301, 301, -86400])
def test_expired_signature(stocked: Shop, order: str, offset: int) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    header = sign(body, SECRET, int(stocked.clock().timestamp()) + offset)
    with unchanged(stocked), pytest.raises(SignatureExpired):
        stocked.settle_webhook(body, header, secret=SECRET)


def test_tolerance_and_now_are_honoured(stocked: Shop, order: str, shop_clock: ShopClock) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    signed_at = shop_clock.now - timedelta(seconds=1000)
    header = sign(body, SECRET, int(signed_at.timestamp()))
    with unchanged(stocked), pytest.raises(SignatureExpired):
        stocked.settle_webhook(body, header, secret=SECRET)
    ok = stocked.settle_webhook(body, header, secret=SECRET, now=signed_at + timedelta(seconds=10))
    assert ok.outcome == "settled"
    body2 = body_for(stocked, order, SUCCEEDED, event_id="evt_2")
    header2 = sign(body2, SECRET, int(signed_at.timestamp()))
    assert stocked.settle_webhook(body2, header2, secret=SECRET, tolerance=1000).outcome == (
        "already_settled"
    )


def test_signature_is_decided_before_parsing(stocked: Shop) -> None:
    with unchanged(stocked), pytest.raises(SignatureMismatch):
        stocked.settle_webhook(b"{not json", "t=1,v1=" + "0" * 64, secret=SECRET)
    with unchanged(stocked), pytest.raises(SignatureMissing):
        stocked.settle_webhook(b"x" * (MAX_BODY + 10), None, secret=SECRET)


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[]",
        b'{"id":"evt_1","object":"event"}',
        b'{"id":"evt_1","type":"payment_intent.succeeded","livemode":false,"created":1}',
        b'{"id":"evt_1","type":"payment_intent.succeeded","livemode":false,"created":1,'
        b'"data":{"object":{"id":"pi_1","amount":"12.50","amount_received":0,'
        b'"currency":"eur","status":"succeeded"}}}',
        b'{"id":"evt_1","type":"payment_intent.succeeded","livemode":false,"created":1,'
        b'"data":{"object":{"id":"pi_1","amount":100,"amount_received":100,'
        b'"currency":"xxx","status":"succeeded"}}}',
        b'{"id":"","type":"charge.refunded","livemode":false,"created":1,"data":{}}',
    ],
    ids=[
        "bad-json",
        "empty",
        "array",
        "no-type",
        "no-data",
        "amount-as-text",
        "unknown-currency",
        "empty-id",
    ],
)
def test_malformed_signed_bodies_are_typed(stocked: Shop, order: str, body: bytes) -> None:
    with unchanged(stocked), pytest.raises(MalformedEvent):
        deliver(stocked, body)


def test_body_over_one_mib_is_refused_before_parsing(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    padded = body[:-1] + b',"pad":"' + b"x" * MAX_BODY + b'"}'
    with unchanged(stocked), pytest.raises(BodyTooLarge):
        deliver(stocked, padded)
    invalid = b"{" * (MAX_BODY + 1)  # not JSON either: size is checked first
    with unchanged(stocked), pytest.raises(BodyTooLarge):
        deliver(stocked, invalid)
    assert deliver(stocked, body).outcome == "settled"


@pytest.mark.parametrize("shop_live", [True, False])
def test_wrong_mode_events_are_rejected(
    tmp_path: Path, shop_clock: ShopClock, shop_live: bool
) -> None:
    with Shop.open(
        tmp_path / "mode.db",
        provider=LiveStandIn() if shop_live else FakeProvider(),
        clock=shop_clock,
        config=ShopConfig(livemode=shop_live),
    ) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 1)], order_id="o1")
        wrong = body_for(shop, "o1", SUCCEEDED, event_id="evt_1", livemode=not shop_live)
        with unchanged(shop), pytest.raises(LiveModeMismatch):
            deliver(shop, wrong)
        right = body_for(shop, "o1", SUCCEEDED, event_id="evt_1", livemode=shop_live)
        assert deliver(shop, right).outcome == "settled"
        check_all(shop)


def test_the_signing_secret_must_be_given(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    with unchanged(stocked), pytest.raises(ValueError):
        stocked.settle_webhook(body, sign(body, SECRET, 0), secret="")


def test_the_body_must_be_bytes(stocked: Shop, order: str) -> None:
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    header = sign(body, SECRET, int(stocked.clock().timestamp()))
    with unchanged(stocked), pytest.raises(TypeError):
        stocked.settle_webhook(body.decode(), header, secret=SECRET)  # type: ignore[arg-type]


# -- parking: events that come before the order can take them ---------------------------------


@pytest.mark.both_backends
def test_event_for_an_unknown_intent_is_parked_not_lost(stocked: Shop) -> None:
    intent = PaymentIntent(intent_id="pi_nobody", order_id="ghost", amount=100, currency="EUR")
    body = FakeProvider.event_for(intent, SUCCEEDED, event_id="evt_ghost", created=0)
    result = deliver(stocked, body)
    assert result.outcome == "recorded"
    assert "parked" in result.reason
    parked = stocked.ledger.query("SELECT event_id, intent_id FROM parked")
    assert parked == [("evt_ghost", "pi_nobody")]
    assert webhook_row(stocked, "evt_ghost") is not None
    check_all(stocked)


@pytest.mark.both_backends
def test_an_event_before_the_flow_waits_is_parked_then_applied(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    with Shop.open(targets.new("park"), clock=shop_clock, provider=provider) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        assert shop.order("o1").order.intent_id is None  # sitting in a retry wait
        future = PaymentIntent(
            intent_id=intent_id_for("o1"), order_id="o1", amount=2500, currency="EUR"
        )
        body = FakeProvider.event_for(future, SUCCEEDED, event_id="evt_early", created=0)
        early = deliver(shop, body)
        assert (early.outcome, early.order_id) == ("recorded", "o1")
        assert shop.order("o1").order.status == "placed"
        shop_clock.advance(2)
        shop.fire_timers()
        row = shop.order("o1").order
        assert (row.status, row.intent_id) == ("fulfilled", future.intent_id)
        assert "WebhookUnparked" in event_types(shop, "o1")
        assert shop.ledger.query("SELECT count(*) FROM parked") == [(0,)]
        assert stock(shop, "MUG") == (8, 0, 2)
        with unchanged(shop):
            assert deliver(shop, body).outcome == "already_settled"
        check_all(shop)


@pytest.mark.both_backends
def test_an_early_failed_attempt_is_parked_then_recorded(
    targets: Targets, shop_clock: ShopClock
) -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited"]})
    with Shop.open(targets.new("park"), clock=shop_clock, provider=provider) as shop:
        stocked_shop(shop)
        shop.start_order([("MUG", 2)], order_id="o1")
        future = PaymentIntent(
            intent_id=intent_id_for("o1"), order_id="o1", amount=2500, currency="EUR"
        )
        deliver(shop, FakeProvider.event_for(future, FAILED, event_id="evt_f", created=0))
        shop_clock.advance(2)
        shop.fire_timers()
        assert shop.order("o1").order.status == "awaiting_payment"
        assert count_events(shop, "PaymentFailed") == 1
        check_all(shop)


@pytest.mark.both_backends
def test_nothing_written_by_rejected_deliveries_then_a_good_one_works(
    stocked: Shop, order: str
) -> None:
    before = snapshot(stocked)
    body = body_for(stocked, order, SUCCEEDED, event_id="evt_1")
    for bad in (None, "t=1,v1=00"):
        with pytest.raises((SignatureMissing, SignatureMismatch, SignatureExpired)):
            stocked.settle_webhook(body, bad, secret=SECRET)
    assert snapshot(stocked) == before
    assert deliver(stocked, body).outcome == "settled"
