"""Every recorded Stripe fixture, delivered through `Shop.settle_webhook` on a real file:
re-id'd and pointed at a real order (it acts), and raw (it is recorded or ignored)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from shop_helpers import (
    STRIPE,
    ShopClock,
    after_deferred_calls,
    check_all,
    count_events,
    deliver,
    stock,
)

from commerce import FakeProvider, Money, Shop

HERE = "stripe-ruby-mock"
PAY_RAILS = "pay-rails"
OPENAPI = "openapi"
MISSING = f"payment fixtures not found at {STRIPE} (shared/ must sit beside the repository)"

# openapi objects are wrapped in the event type they naturally belong to
OPENAPI_TYPES = {
    "payment_intent": "payment_intent.created",
    "charge": "charge.succeeded",
    "refund": "charge.refund.updated",
    "dispute": "charge.dispute.created",
    "checkout.session": "checkout.session.completed",
}


def _wrap(obj: Any, event_type: str, event_id: str) -> bytes:
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2020-08-27",
        "created": 1700000000,
        "livemode": False,
        "type": event_type,
        "data": {"object": obj},
    }
    return json.dumps(event).encode()


def fixture_events() -> dict[str, bytes]:
    """Every Stripe fixture as a full event body, keyed by `<source>/<name>`."""
    events: dict[str, bytes] = {}
    if not STRIPE.is_dir():
        return events
    for path in sorted((STRIPE / HERE).glob("*.json")):
        events[f"{HERE}/{path.stem}"] = path.read_bytes()
    for path in sorted((STRIPE / PAY_RAILS).glob("*.data.json")):
        kind = path.name.removesuffix(".data.json")
        data = json.loads(path.read_bytes())
        events[f"{PAY_RAILS}/{kind}"] = _wrap(data["object"], kind, f"evt_payrails_{kind}")
    for path in sorted((STRIPE / OPENAPI).glob("*.object.json")):
        name = path.name.removesuffix(".object.json")
        if name == "event":
            events[f"{OPENAPI}/event"] = path.read_bytes()
        else:
            obj = json.loads(path.read_bytes())
            events[f"{OPENAPI}/{name}"] = _wrap(obj, OPENAPI_TYPES[name], f"evt_openapi_{name}")
    return events


EVENTS = fixture_events()


def params(keys: list[str], marks: dict[str, Any] | None = None) -> list[Any]:
    if not EVENTS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]
    marks = marks or {}
    return [pytest.param(k, id=k, marks=marks.get(k, ())) for k in keys]


@pytest.fixture
def usd_shop(tmp_path: Path, shop_clock: ShopClock) -> Iterator[Shop]:
    with Shop.open(tmp_path / "fixtures.db", provider=FakeProvider(), clock=shop_clock) as shop:
        shop.add_product("CAP", "Cap", Money(1000, "USD"), stock=10)
        shop.start_order([("CAP", 2)], order_id="o1")  # 2000 USD, like the recorded events
        yield shop


def pointed(shop: Shop, key: str, kind: str, event_id: str, refunded: int | None = None) -> bytes:
    """The fixture `key` re-id'd as `kind` about order o1's intent, amount and currency."""
    row = shop.order("o1").order
    doc = json.loads(EVENTS[key])
    doc.update(id=event_id, type=kind, livemode=False)
    obj = doc["data"]["object"]
    currency = row.currency.lower()
    if kind.startswith("payment_intent."):
        succeeded = kind == "payment_intent.succeeded"
        obj.update(
            id=row.intent_id,
            amount=row.total,
            amount_received=row.total if succeeded else 0,
            currency=currency,
            metadata={"order_id": "o1"},
        )
        if succeeded:
            obj.update(status="succeeded", last_payment_error=None)
    elif kind.startswith("charge."):
        refunded = row.total if refunded is None else refunded
        obj.update(
            payment_intent=row.intent_id,
            amount=row.total,
            amount_captured=row.total,
            amount_refunded=refunded if kind == "charge.refunded" else 0,
            refunded=refunded == row.total if kind == "charge.refunded" else False,
            currency=currency,
            metadata={"order_id": "o1"},
        )
    elif kind.startswith("checkout.session"):
        obj.update(payment_intent=row.intent_id, metadata={"order_id": "o1"})
        if obj.get("amount_total") is not None:
            obj.update(amount_total=row.total, currency=currency)
    return json.dumps(doc).encode()


# -- pointed at a real order ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key", params([f"{HERE}/payment_intent.succeeded", f"{OPENAPI}/payment_intent"])
)
def test_succeeded_fixture_fulfils(usd_shop: Shop, key: str) -> None:
    result = deliver(usd_shop, pointed(usd_shop, key, "payment_intent.succeeded", "evt_a"))
    assert (result.outcome, result.order_id, result.order_status) == ("settled", "o1", "fulfilled")
    assert stock(usd_shop, "CAP") == (8, 0, 2)
    again = deliver(usd_shop, pointed(usd_shop, key, "payment_intent.succeeded", "evt_b"))
    assert again.outcome == "already_settled"
    assert count_events(usd_shop, "OrderFulfilled") == 1
    check_all(usd_shop)


@pytest.mark.parametrize(
    "key", params([f"{HERE}/payment_intent.payment_failed", f"{OPENAPI}/payment_intent"])
)
def test_payment_failed_fixture_is_recorded(usd_shop: Shop, key: str) -> None:
    result = deliver(usd_shop, pointed(usd_shop, key, "payment_intent.payment_failed", "evt_f"))
    assert (result.outcome, result.order_status) == ("recorded", "awaiting_payment")
    assert count_events(usd_shop, "PaymentFailed", "o1") == 1
    assert stock(usd_shop, "CAP") == (8, 2, 0)
    check_all(usd_shop)


REFUND_FIXTURES = [f"{HERE}/charge.refunded", f"{PAY_RAILS}/charge.refunded", f"{OPENAPI}/charge"]


def _refund_amount(key: str, total: int) -> int:
    return total // 3 if key.startswith(PAY_RAILS) else total  # pay-rails' is a partial refund


@pytest.mark.parametrize("key", params(REFUND_FIXTURES))
def test_refund_fixture_after_fulfilment_returns_refunded(usd_shop: Shop, key: str) -> None:
    usd_shop.settle("o1")
    amount = _refund_amount(key, 2000)
    result = deliver(usd_shop, pointed(usd_shop, key, "charge.refunded", "evt_r", amount))
    assert result.outcome == "refunded"


@pytest.mark.parametrize("key", params(REFUND_FIXTURES))
def test_refund_fixture_after_fulfilment_is_recorded(usd_shop: Shop, key: str) -> None:
    usd_shop.settle("o1")
    amount = _refund_amount(key, 2000)
    body = pointed(usd_shop, key, "charge.refunded", "evt_r", amount)
    assert deliver(usd_shop, body).outcome == "refunded"
    row = usd_shop.order("o1").order
    full = amount == 2000
    assert row.status == ("refunded" if full else "partially_refunded")
    assert row.refunded == amount
    assert deliver(usd_shop, body).outcome == "already_settled"
    assert stock(usd_shop, "CAP") == (8, 0, 2)
    check_all(usd_shop)


IGNORED_POINTED = [
    (f"{HERE}/payment_intent.created", "payment_intent.created"),
    (f"{HERE}/payment_intent.processing", "payment_intent.processing"),
    (f"{HERE}/payment_intent.requires_action", "payment_intent.requires_action"),
    (
        f"{HERE}/payment_intent.amount_capturable_updated",
        "payment_intent.amount_capturable_updated",
    ),
    (f"{HERE}/charge.failed", "charge.failed"),
    (f"{HERE}/charge.dispute.created", "charge.dispute.created"),
    (f"{HERE}/checkout.session.completed.setup_mode", "checkout.session.completed"),
]


@pytest.mark.parametrize(
    ("key", "kind"),
    [pytest.param(k, t, id=k) for k, t in IGNORED_POINTED]
    if EVENTS
    else [pytest.param(None, None, marks=pytest.mark.skip(reason=MISSING))],
)
def test_other_fixtures_for_the_order_are_ignored(usd_shop: Shop, key: str, kind: str) -> None:
    result = deliver(usd_shop, pointed(usd_shop, key, kind, "evt_o"))
    assert result.outcome == "ignored"
    assert usd_shop.order("o1").order.status == "awaiting_payment"
    assert stock(usd_shop, "CAP") == (8, 2, 0)
    assert deliver(usd_shop, pointed(usd_shop, key, kind, "evt_o")).outcome == "already_settled"
    check_all(usd_shop)


SETTLING_POINTED = [
    (f"{HERE}/charge.succeeded", "charge.succeeded"),
    (f"{PAY_RAILS}/charge.succeeded", "charge.succeeded"),
    (f"{OPENAPI}/charge", "charge.succeeded"),
    (f"{HERE}/checkout.session.completed", "checkout.session.completed"),
    (f"{HERE}/checkout.session.completed.payment_mode", "checkout.session.completed"),
    (f"{PAY_RAILS}/checkout.session.completed", "checkout.session.completed"),
    (f"{PAY_RAILS}/checkout.session.completed", "checkout.session.async_payment_succeeded"),
]
SUCCEEDED_FIXTURE = f"{HERE}/payment_intent.succeeded"


def _pairs(pairs: list[tuple[str, str]]) -> list[Any]:
    if not EVENTS:
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=MISSING))]
    return [pytest.param(k, t, id=k) for k, t in pairs]


@pytest.mark.parametrize(("key", "kind"), _pairs(SETTLING_POINTED))
def test_charge_and_checkout_events_settle_the_payment_once(
    usd_shop: Shop, key: str, kind: str
) -> None:
    """An account subscribed only to Charge or Checkout events still fulfils, and the
    payment_intent.succeeded about the same payment is deduplicated (either order)."""
    result = deliver(usd_shop, pointed(usd_shop, key, kind, "evt_c"))
    assert (result.outcome, result.order_status) == ("settled", "fulfilled"), result
    intent_event = pointed(usd_shop, SUCCEEDED_FIXTURE, "payment_intent.succeeded", "evt_pi")
    assert deliver(usd_shop, intent_event).outcome == "already_settled"
    assert count_events(usd_shop, "OrderFulfilled") == 1
    assert stock(usd_shop, "CAP") == (8, 0, 2)
    check_all(usd_shop)


@pytest.mark.parametrize(("key", "kind"), _pairs(SETTLING_POINTED))
def test_charge_and_checkout_events_after_the_intent_event_are_already_settled(
    usd_shop: Shop, key: str, kind: str
) -> None:
    intent_event = pointed(usd_shop, SUCCEEDED_FIXTURE, "payment_intent.succeeded", "evt_pi")
    assert deliver(usd_shop, intent_event).outcome == "settled"
    assert deliver(usd_shop, pointed(usd_shop, key, kind, "evt_c")).outcome == "already_settled"
    assert usd_shop.ledger.db.execute("SELECT sum(paid) FROM orders").fetchone() == (2000,)
    check_all(usd_shop)


@pytest.mark.parametrize("key", params([f"{HERE}/payment_intent.canceled"]))
def test_payment_intent_canceled_closes_the_awaiting_order(usd_shop: Shop, key: str) -> None:
    result = deliver(usd_shop, pointed(usd_shop, key, "payment_intent.canceled", "evt_x"))
    assert (result.outcome, result.order_status) == ("recorded", "cancelled")
    assert "stock released" in result.reason
    assert stock(usd_shop, "CAP") == (10, 0, 0)
    assert "AwaitPayment" not in usd_shop.engine.status("o1").awaits
    assert after_deferred_calls(usd_shop).status == "cancelled"
    again = pointed(usd_shop, key, "payment_intent.canceled", "evt_y")
    assert deliver(usd_shop, again).outcome == "ignored"
    check_all(usd_shop)


@pytest.mark.parametrize("key", params([f"{HERE}/payment_intent.canceled"]))
def test_payment_intent_canceled_after_payment_changes_nothing(usd_shop: Shop, key: str) -> None:
    usd_shop.settle("o1")
    result = deliver(usd_shop, pointed(usd_shop, key, "payment_intent.canceled", "evt_x"))
    assert (result.outcome, result.order_status) == ("ignored", "fulfilled")
    check_all(usd_shop)


# -- raw, about an unrelated intent ------------------------------------------------------------

# `payment_intent` is "pm_1234" (a payment method id): recorded as an orphan, answered 2xx
RAW_ORPHANS = [f"{PAY_RAILS}/charge.refunded", f"{PAY_RAILS}/charge.succeeded"]
RAW_PARKED = [
    f"{HERE}/payment_intent.succeeded",
    f"{HERE}/payment_intent.payment_failed",
    f"{HERE}/charge.succeeded",
    f"{HERE}/checkout.session.completed",
    f"{HERE}/checkout.session.completed.payment_mode",
]


@pytest.mark.parametrize(
    "key",
    params(sorted(EVENTS)),
)
def test_raw_fixture_is_recorded_or_ignored(usd_shop: Shop, key: str) -> None:
    body = EVENTS[key]
    result = deliver(usd_shop, body)
    assert result.outcome in ("recorded", "ignored")
    assert ("parked" in result.reason) == (key in RAW_PARKED), (key, result)
    if key in RAW_ORPHANS:
        assert (result.outcome, result.reason) == (
            "recorded",
            "orphan: 'pm_1234' is not a payment intent id",
        )
    assert usd_shop.order("o1").order.status == "awaiting_payment"
    assert stock(usd_shop, "CAP") == (8, 2, 0)
    event_id = json.loads(body)["id"]
    assert usd_shop.ledger.db.execute(
        "SELECT count(*) FROM webhooks WHERE event_id = ?", (event_id,)
    ).fetchone() == (1,)
    assert deliver(usd_shop, body).outcome == "already_settled"
    check_all(usd_shop)


@pytest.mark.skipif(not EVENTS, reason=MISSING)
def test_ruby_mock_fixtures_share_one_event_id_so_later_ones_are_conflicts(usd_shop: Shop) -> None:
    """stripe-ruby-mock reuses two zeroed event ids: per id the first body stands, the rest
    are recorded as conflicts and have no effect."""
    keys = [k for k in sorted(EVENTS) if k.startswith(HERE) and k not in RAW_PARKED]
    firsts: dict[str, str] = {}
    for key in keys:
        event_id = json.loads(EVENTS[key])["id"]
        result = deliver(usd_shop, EVENTS[key])
        if event_id not in firsts:
            firsts[event_id] = key
            assert result.outcome == "ignored", key
        else:
            assert result.outcome == "recorded", key
            assert "different body" in result.reason
    assert len(firsts) >= 2
    assert count_events(usd_shop, "WebhookConflict") == len(keys) - len(firsts)
    stored = usd_shop.ledger.db.execute(
        "SELECT data FROM events WHERE type = 'WebhookReceived' ORDER BY position"
    ).fetchall()
    assert [json.loads(data)["body"] for (data,) in stored] == [
        json.loads(EVENTS[key]) for key in firsts.values()
    ]
    assert usd_shop.order("o1").order.status == "awaiting_payment"
    check_all(usd_shop)


@pytest.mark.parametrize("key", params([f"{PAY_RAILS}/checkout.session.completed"]))
def test_a_delayed_checkout_payment_that_fails_leaves_the_order_waiting(
    usd_shop: Shop, key: str
) -> None:
    """`checkout.session.async_payment_failed` (a bank debit bounced) is a failed attempt."""
    body = pointed(usd_shop, key, "checkout.session.async_payment_failed", "evt_async_fail")
    doc = json.loads(body)
    doc["data"]["object"]["payment_status"] = "unpaid"
    result = deliver(usd_shop, json.dumps(doc).encode())
    assert (result.outcome, result.order_status) == ("recorded", "awaiting_payment"), result
    assert count_events(usd_shop, "PaymentFailed") == 1
    assert stock(usd_shop, "CAP") == (8, 2, 0)
    check_all(usd_shop)
