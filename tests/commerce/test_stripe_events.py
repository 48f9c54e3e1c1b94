from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commerce.errors import BodyTooLarge, MalformedEvent
from commerce.money import Money
from commerce.stripe_events import (
    MAX_BODY,
    AnyStripeEvent,
    ChargeRefunded,
    ChargeSucceeded,
    CheckoutCompleted,
    IgnoredEvent,
    IntentEvent,
    decode_event,
)

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "payments"
STRIPE = FIXTURES / "stripe"
MISSING = f"payment fixtures not found at {FIXTURES} (shared/ must sit beside the repository)"


def fixture_files(folder: str) -> list[Any]:
    files = sorted((STRIPE / folder).glob("*.json"))
    return files or [pytest.param(None, marks=pytest.mark.skip(reason=MISSING))]


def read(relative: str) -> bytes:
    path = STRIPE / relative
    if not path.is_file():
        pytest.skip(MISSING)
    return path.read_bytes()


def wrap(data: bytes, event_type: str, event_id: str = "evt_wrapped") -> bytes:
    """A pay-rails `data` part (or an openapi object) as a full event body."""
    head = f'{{"id":"{event_id}","object":"event","type":"{event_type}",'
    return f'{head}"livemode":false,"created":1700000000,"data":'.encode() + data + b"}"


def as_data(obj: bytes) -> bytes:
    return b'{"object":' + obj + b"}"


DECODED: dict[str, type[AnyStripeEvent]] = {
    "charge.refunded": ChargeRefunded,
    "charge.succeeded": ChargeSucceeded,
    "checkout.session.completed": CheckoutCompleted,
}


def expected_class(event_type: str) -> type[AnyStripeEvent]:
    if event_type.startswith("payment_intent."):
        return IntentEvent
    return DECODED.get(event_type, IgnoredEvent)


@pytest.mark.parametrize("path", fixture_files("stripe-ruby-mock"), ids=lambda p: p and p.name)
def test_every_full_event_fixture_decodes(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    event = decode_event(path.read_bytes())
    assert type(event) is expected_class(raw["type"])
    assert (event.event_id, event.event_type) == (raw["id"], raw["type"])
    assert (event.livemode, event.created) == (raw["livemode"], raw["created"])
    assert event.api_version == raw.get("api_version")
    obj = raw["data"]["object"]
    if isinstance(event, IntentEvent | ChargeRefunded):
        assert event.amount == obj["amount"]
        assert event.currency == obj["currency"].upper()


def test_payment_intent_fixtures_in_detail() -> None:
    ok = decode_event(read("stripe-ruby-mock/payment_intent.succeeded.json"))
    assert isinstance(ok, IntentEvent)
    assert (ok.intent_id, ok.status, ok.amount_received) == ("pi_" + "0" * 24, "succeeded", 2000)
    assert (ok.money, ok.order_id, ok.error_code) == (Money(2000, "USD"), None, None)
    failed = decode_event(read("stripe-ruby-mock/payment_intent.payment_failed.json"))
    assert isinstance(failed, IntentEvent)
    assert (failed.status, failed.amount_received) == ("requires_payment_method", 0)
    assert (failed.error_code, failed.error_message) == ("card_declined", "Your card was declined.")
    old = decode_event(read("stripe-ruby-mock/payment_intent.processing.json"))
    assert isinstance(old, IntentEvent)
    assert (old.api_version, old.money, old.status) == (
        "2018-02-28",
        Money(900, "EUR"),
        "processing",
    )


def test_full_refund_fixture_without_payment_intent() -> None:
    event = decode_event(read("stripe-ruby-mock/charge.refunded.json"))
    assert isinstance(event, ChargeRefunded)
    assert (event.charge_id, event.intent_id) == ("ch_" + "0" * 24, None)
    assert (event.amount, event.amount_refunded, event.refunded) == (100, 100, True)
    assert event.fully_refunded


def test_order_id_comes_from_metadata() -> None:
    raw = json.loads(read("stripe-ruby-mock/payment_intent.succeeded.json"))
    raw["data"]["object"]["metadata"] = {"order_id": "ord_42", "other": "x"}
    event = decode_event(json.dumps(raw).encode())
    assert isinstance(event, IntentEvent)
    assert event.order_id == "ord_42"


def test_pay_rails_charge_and_checkout_events_decode() -> None:
    charge = decode_event(wrap(read("pay-rails/charge.succeeded.data.json"), "charge.succeeded"))
    assert isinstance(charge, ChargeSucceeded)
    assert (charge.intent_id, charge.amount_captured, charge.currency) == ("pm_1234", 500, "USD")
    session = decode_event(
        wrap(read("pay-rails/checkout.session.completed.data.json"), "checkout.session.completed")
    )
    assert isinstance(session, CheckoutCompleted)
    assert (session.intent_id, session.payment_status, session.mode) == (
        None,
        "paid",
        "subscription",
    )
    assert (session.amount_total, session.currency) == (1900, "USD")


def test_ruby_mock_checkout_sessions_decode() -> None:
    paid = decode_event(read("stripe-ruby-mock/checkout.session.completed.json"))
    assert isinstance(paid, CheckoutCompleted)
    assert (paid.intent_id, paid.amount_total, paid.payment_status) == (
        "pi_" + "0" * 24,
        3000,
        "paid",
    )
    setup = decode_event(read("stripe-ruby-mock/checkout.session.completed.setup_mode.json"))
    assert isinstance(setup, CheckoutCompleted)
    assert (setup.intent_id, setup.amount_total, setup.currency) == (None, None, None)
    assert setup.payment_status == "no_payment_required"


def test_pay_rails_refund_with_a_payment_method_id_decodes_for_the_settler() -> None:
    """An unexpected id shape is well formed: the settler records it as an orphan (2xx)."""
    body = wrap(read("pay-rails/charge.refunded.data.json"), "charge.refunded")
    event = decode_event(body)
    assert isinstance(event, ChargeRefunded)
    assert event.intent_id == "pm_1234"


def test_pay_rails_partial_refund_once_the_id_is_right() -> None:
    data = read("pay-rails/charge.refunded.data.json").replace(b'"pm_1234"', b'"pi_1234"')
    event = decode_event(wrap(data, "charge.refunded"))
    assert isinstance(event, ChargeRefunded)
    assert (event.intent_id, event.amount, event.amount_refunded) == ("pi_1234", 1500, 500)
    assert (event.refunded, event.fully_refunded) == (False, False)


def test_openapi_object_shapes() -> None:
    pi = decode_event(
        wrap(as_data(read("openapi/payment_intent.object.json")), "payment_intent.canceled")
    )
    assert isinstance(pi, IntentEvent)
    assert (pi.intent_id, pi.money, pi.status) == (
        "pi_1PgafyB7WZ01zgkWSjxsAJo3",
        Money(1099, "USD"),
        "requires_payment_method",
    )
    assert (pi.error_code, pi.error_message) == (None, None)  # last_payment_error has only a type
    charge = decode_event(wrap(as_data(read("openapi/charge.object.json")), "charge.refunded"))
    assert isinstance(charge, ChargeRefunded)
    assert charge.currency == "USD"
    for name, event_type in [
        ("refund", "refund.created"),
        ("dispute", "charge.dispute.created"),
    ]:
        body = wrap(as_data(read(f"openapi/{name}.object.json")), event_type)
        assert isinstance(decode_event(body), IgnoredEvent)
    session = wrap(
        as_data(read("openapi/checkout.session.object.json")), "checkout.session.completed"
    )
    assert isinstance(decode_event(session), CheckoutCompleted)


def test_openapi_event_with_null_api_version() -> None:
    event = decode_event(read("openapi/event.object.json"))
    assert event == IgnoredEvent(
        event_id="evt_1Pgc76B7WZ01zgkWwyRHS12y",
        event_type="plan.created",
        livemode=False,
        created=1234567890,
        api_version=None,
    )


def test_body_too_large_is_refused_before_parsing() -> None:
    with pytest.raises(BodyTooLarge, match=f"{MAX_BODY + 1} bytes, over the {MAX_BODY}-byte"):
        decode_event(b"{" * (MAX_BODY + 1))  # not even JSON: never parsed
    body = b'{"id":"e","type":"x","livemode":true,"created":1}'
    padded = body + b" " * (MAX_BODY - len(body))
    assert decode_event(padded).livemode is True


PI = {"id": "pi_1", "amount": 5, "amount_received": 5, "currency": "eur", "status": "succeeded"}


def event_with(obj: dict[str, Any], event_type: str = "payment_intent.succeeded") -> bytes:
    head = {"id": "evt_1", "type": event_type, "livemode": False, "created": 1}
    return json.dumps({**head, "data": {"object": obj}}).encode()


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "invalid JSON: Input data was truncated"),
        (b'{"id": "evt_1", "type": ', "invalid JSON: Input data was truncated"),
        (b"{nope}", "invalid JSON"),
        (b"[]", "Expected `object`, got `array`"),
        (b'{"type":"x","livemode":false,"created":1}', "missing required field `id`"),
        (b'{"id":"","type":"x","livemode":false,"created":1}', "at `$.id`"),
        (
            b'{"id":"e","type":"x","livemode":"false","created":1}',
            "Expected `bool`, got `str` - at `$.livemode`",
        ),
        (b'{"id":"e","type":"x","livemode":false,"created":"1"}', "at `$.created`"),
        (
            b'{"id":"e","type":"payment_intent.succeeded","livemode":false,"created":1}',
            "missing required field `data`",
        ),
        (
            event_with({**PI, "amount": "5"}),
            "Expected `int`, got `str` - at `$.data.object.amount`",
        ),
        (event_with({**PI, "amount": 5.5}), "at `$.data.object.amount`"),
        (event_with({**PI, "amount": -5}), "at `$.data.object.amount`"),
        (
            event_with({k: v for k, v in PI.items() if k != "status"}),
            "missing required field `status` - at `$.data.object`",
        ),
        (
            event_with({**PI, "currency": "xyz"}),
            "unknown currency 'XYZ' - at `$.data.object.currency`",
        ),
        (event_with({**PI, "currency": "euro"}), "at `$.data.object.currency`"),
        (event_with({**PI, "id": ""}), "at `$.data.object.id`"),
        (event_with({**PI, "metadata": {"order_id": 7}}), "at `$.data.object.metadata.order_id`"),
        (
            event_with({"id": "ch_1", "amount": 5, "currency": "usd"}, "charge.refunded"),
            "missing required field `amount_refunded`",
        ),
    ],
)
def test_malformed_bodies_name_the_problem(body: bytes, fragment: str) -> None:
    with pytest.raises(MalformedEvent, match="malformed event: ") as info:
        decode_event(body)
    assert fragment in str(info.value)


def test_decoded_events_round_trip_for_the_ledger() -> None:
    decoded = [decode_event(event_with(PI)), decode_event(event_with(PI, "customer.created"))]
    decoded.append(
        decode_event(
            event_with(
                {
                    **PI,
                    "id": "ch_1",
                    "payment_intent": "pi_1",
                    "amount_refunded": 2,
                    "refunded": False,
                },
                "charge.refunded",
            )
        )
    )
    for event in decoded:
        again = msgspec.json.decode(msgspec.json.encode(event), type=AnyStripeEvent)
        assert again == event


def test_tag_set_is_pinned() -> None:
    classes = (IntentEvent, ChargeRefunded, ChargeSucceeded, CheckoutCompleted, IgnoredEvent)
    tags = {cls.__struct_config__.tag for cls in classes}
    assert tags == {
        "IntentEvent",
        "ChargeRefunded",
        "ChargeSucceeded",
        "CheckoutCompleted",
        "IgnoredEvent",
    }


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0))
def test_any_truncation_is_malformed(cut: int) -> None:
    body = event_with({**PI, "metadata": {"order_id": "o1"}})
    with pytest.raises(MalformedEvent):
        decode_event(body[: cut % len(body)])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_fail_only_as_malformed(body: bytes) -> None:
    with contextlib.suppress(MalformedEvent):
        decode_event(body)
