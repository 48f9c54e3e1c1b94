from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest

from commerce.errors import (
    CardDeclined,
    CommerceError,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
    provider_error,
)
from commerce.money import Money
from commerce.providers.base import PaymentIntent, PaymentProvider
from commerce.providers.fake import EVENT_KINDS, FakeProvider
from commerce.stripe_events import ChargeRefunded, IntentEvent, decode_event
from flowlib.errors import StepFailed

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "payments"
EUR_10 = Money(1000, "EUR")


def test_fake_provider_satisfies_the_protocol() -> None:
    provider: PaymentProvider = FakeProvider()
    assert provider.create_intent("o1", EUR_10, idempotency_key="k").amount == 1000


def test_intent_ids_derive_from_the_idempotency_key() -> None:
    intent = FakeProvider().create_intent("o1", EUR_10, idempotency_key="order:o1:step:3")
    digest = hashlib.sha256(b"order:o1:step:3").hexdigest()[:24]
    assert intent == PaymentIntent(
        intent_id=f"pi_{digest}",
        order_id="o1",
        amount=1000,
        currency="EUR",
        status="requires_payment_method",
        livemode=False,
        client_secret=intent.client_secret,
    )
    assert intent.money == EUR_10
    assert intent.client_secret and intent.client_secret.startswith(f"pi_{digest}_secret_fake_")
    again = FakeProvider().create_intent("o1", EUR_10, idempotency_key="order:o1:step:3")
    assert again.client_secret == intent.client_secret  # derived from the key, like the id


def test_same_key_same_intent_even_across_instances() -> None:
    provider = FakeProvider()
    first = provider.create_intent("o1", EUR_10, idempotency_key="k1")
    assert provider.create_intent("o1", EUR_10, idempotency_key="k1") == first
    assert FakeProvider().create_intent("o1", EUR_10, idempotency_key="k1") == first
    other = provider.create_intent("o1", EUR_10, idempotency_key="k2")
    assert other.intent_id != first.intent_id
    assert len(provider.intents) == 2


def test_key_reused_with_other_parameters_is_refused() -> None:
    provider = FakeProvider()
    provider.create_intent("o1", EUR_10, idempotency_key="k1")
    with pytest.raises(InvalidRequest, match="different parameters") as info:
        provider.create_intent("o1", Money(999, "EUR"), idempotency_key="k1")
    assert (info.value.code, info.value.retryable) == ("idempotency_error", False)


def test_fail_next_from_the_constructor_then_succeeds() -> None:
    provider = FakeProvider(fail_next={"create_intent": ["rate_limited", "provider_unavailable"]})
    with pytest.raises(RateLimited):
        provider.create_intent("o1", EUR_10, idempotency_key="k")
    with pytest.raises(ProviderUnavailable):
        provider.create_intent("o1", EUR_10, idempotency_key="k")
    assert provider.create_intent("o1", EUR_10, idempotency_key="k").order_id == "o1"
    assert provider.calls == [("create_intent", "k")] * 3


def test_fail_next_method_counts_times_per_operation() -> None:
    provider = FakeProvider()
    provider.fail_next("refund", "card_declined", times=2)
    provider.create_intent("o1", EUR_10, idempotency_key="k")
    for _ in range(2):
        with pytest.raises(CardDeclined):
            provider.refund("pi_x", EUR_10, idempotency_key="r")
    assert provider.refund("pi_x", EUR_10, idempotency_key="r").amount == 1000


def test_fail_next_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="unknown operation 'charge'"):
        FakeProvider().fail_next("charge", "rate_limited")
    with pytest.raises(ValueError, match="unknown error kind 'boom'"):
        FakeProvider(fail_next={"refund": ["boom"]})


@pytest.mark.parametrize(
    ("cls", "kind", "retryable"),
    [
        (CardDeclined, "card_declined", False),
        (RateLimited, "rate_limited", True),
        (ProviderUnavailable, "provider_unavailable", True),
        (InvalidRequest, "invalid_request", False),
    ],
)
def test_provider_errors_are_typed_step_failures(
    cls: type[ProviderError], kind: str, retryable: bool
) -> None:
    exc = provider_error(kind, "try later", code="x1")
    assert type(exc) is cls
    assert isinstance(exc, CommerceError)
    assert isinstance(exc, StepFailed)
    assert (exc.kind, exc.retryable, exc.message, exc.code) == (kind, retryable, "try later", "x1")
    assert str(exc) == f"{kind}: try later"
    again = pickle.loads(pickle.dumps(exc))
    assert (type(again), again.kind, again.message, again.code) == (cls, kind, "try later", "x1")


def test_provider_error_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown provider error kind"):
        provider_error("teapot")


def test_refunds_are_idempotent_and_bounded() -> None:
    provider = FakeProvider()
    intent = provider.create_intent("o1", EUR_10, idempotency_key="k")
    first = provider.refund(intent.intent_id, Money(600, "EUR"), idempotency_key="r1")
    digest = hashlib.sha256(b"r1").hexdigest()[:24]
    assert (first.refund_id, first.intent_id, first.amount) == (
        f"re_{digest}",
        intent.intent_id,
        600,
    )
    assert provider.refund(intent.intent_id, Money(600, "EUR"), idempotency_key="r1") == first
    with pytest.raises(InvalidRequest, match=r"exceeds the 4\.00 EUR left"):
        provider.refund(intent.intent_id, Money(500, "EUR"), idempotency_key="r2")
    assert provider.refund(intent.intent_id, Money(400, "EUR"), idempotency_key="r3").amount == 400
    with pytest.raises(InvalidRequest, match="refund in USD"):
        provider.refund(intent.intent_id, Money(1, "USD"), idempotency_key="r4")


def test_refund_checks_what_it_can_without_state() -> None:
    provider = FakeProvider()
    assert provider.refund("pi_elsewhere", EUR_10, idempotency_key="r").intent_id == "pi_elsewhere"
    with pytest.raises(InvalidRequest, match="no such payment intent") as info:
        provider.refund("pm_1234", EUR_10, idempotency_key="r2")
    assert info.value.code == "resource_missing"
    with pytest.raises(InvalidRequest, match="must be positive"):
        provider.refund("pi_x", Money(0, "EUR"), idempotency_key="r3")
    with pytest.raises(InvalidRequest, match="must be positive"):
        provider.create_intent("o1", Money(0, "EUR"), idempotency_key="k0")
    with pytest.raises(ValueError, match="idempotency key"):
        provider.create_intent("o1", EUR_10, idempotency_key="")


def test_livemode_is_carried() -> None:
    intent = FakeProvider(livemode=True).create_intent("o1", EUR_10, idempotency_key="k")
    assert intent.livemode
    event = decode_event(FakeProvider.event_for(intent, EVENT_KINDS[0], event_id="e", created=1))
    assert event.livemode


def test_events_decode_to_what_the_intent_says() -> None:
    provider = FakeProvider()
    intent = provider.create_intent("o1", Money(1999, "BHD"), idempotency_key="k")
    ok = decode_event(
        provider.event_for(intent, "payment_intent.succeeded", event_id="e1", created=7)
    )
    assert isinstance(ok, IntentEvent)
    assert (ok.event_id, ok.event_type, ok.created, ok.status) == (
        "e1",
        "payment_intent.succeeded",
        7,
        "succeeded",
    )
    assert (ok.intent_id, ok.order_id, ok.money, ok.amount_received) == (
        intent.intent_id,
        "o1",
        intent.money,
        1999,
    )
    failed = decode_event(
        provider.event_for(intent, "payment_intent.payment_failed", event_id="e2", created=8)
    )
    assert isinstance(failed, IntentEvent)
    assert (failed.status, failed.amount_received, failed.error_code) == (
        "requires_payment_method",
        0,
        "card_declined",
    )


@pytest.mark.parametrize(("refunded", "full"), [(None, True), (1999, True), (500, False)])
def test_refund_events(refunded: int | None, full: bool) -> None:
    intent = FakeProvider().create_intent("o1", Money(1999, "EUR"), idempotency_key="k")
    body = FakeProvider.event_for(
        intent, "charge.refunded", event_id="e", created=1, amount_refunded=refunded
    )
    event = decode_event(body)
    assert isinstance(event, ChargeRefunded)
    assert (event.intent_id, event.order_id, event.amount, event.currency) == (
        intent.intent_id,
        "o1",
        1999,
        "EUR",
    )
    assert event.amount_refunded == (refunded or 1999)
    assert (event.refunded, event.fully_refunded) == (full, full)


def test_event_for_checks_its_arguments() -> None:
    intent = FakeProvider().create_intent("o1", EUR_10, idempotency_key="k")
    with pytest.raises(ValueError, match="unknown event kind"):
        FakeProvider.event_for(intent, "charge.succeeded", event_id="e", created=1)
    with pytest.raises(ValueError, match="amount_refunded"):
        FakeProvider.event_for(
            intent, "charge.refunded", event_id="e", created=1, amount_refunded=0
        )


def test_event_bodies_are_deterministic() -> None:
    intent = FakeProvider().create_intent("o1", EUR_10, idempotency_key="k")
    make = FakeProvider.event_for
    assert make(intent, "charge.refunded", event_id="e", created=1) == make(
        intent, "charge.refunded", event_id="e", created=1
    )


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_event_shapes_match_the_real_fixtures(kind: str) -> None:
    real_path = FIXTURES / "stripe" / "stripe-ruby-mock" / f"{kind}.json"
    if not real_path.is_file():
        pytest.skip(f"payment fixtures not found at {FIXTURES} (shared/ sits beside the repo)")
    real = json.loads(real_path.read_bytes())
    intent = FakeProvider().create_intent("o1", EUR_10, idempotency_key="k")
    ours = json.loads(FakeProvider.event_for(intent, kind, event_id="e", created=1))
    assert set(ours) == set(real)
    assert set(ours["data"]["object"]) <= set(real["data"]["object"]) | {"latest_charge"}
    assert ours["data"]["object"]["object"] == real["data"]["object"]["object"]
    assert ours["data"]["object"]["currency"] == "eur"


def test_cancel_and_retrieve_know_only_their_own_intents() -> None:
    fake = FakeProvider()
    intent = fake.create_intent("o1", EUR_10, idempotency_key="k")
    assert fake.retrieve(intent.intent_id) == intent
    assert fake.cancel(intent.intent_id, idempotency_key="c").status == "canceled"
    assert fake.retrieve(intent.intent_id).status == "canceled"
    with pytest.raises(InvalidRequest) as info:
        fake.retrieve("pi_elsewhere")
    assert info.value.code == "resource_missing"


def test_a_paid_intent_cannot_be_cancelled() -> None:
    fake = FakeProvider()
    intent = fake.mark_paid(fake.create_intent("o1", EUR_10, idempotency_key="k").intent_id)
    assert fake.retrieve(intent.intent_id).status == "succeeded"
    with pytest.raises(InvalidRequest):
        fake.cancel(intent.intent_id, idempotency_key="c")
    fake.fail_next("retrieve", "provider_unavailable")
    with pytest.raises(ProviderUnavailable):
        fake.retrieve(intent.intent_id)
