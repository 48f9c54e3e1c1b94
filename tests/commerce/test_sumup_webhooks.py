"""SumUp's webhooks: the signature scheme, the legacy notice let through only to be confirmed,
and every event decoded from what SumUp's API (a local stand-in over real HTTP) reports."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sumup_standin import API_KEY, MERCHANT_CODE, SUMUP, SumUpStandIn

from commerce.errors import (
    MalformedEvent,
    ProviderUnavailable,
    SignatureExpired,
    SignatureMalformed,
    SignatureMismatch,
    SignatureMissing,
)
from commerce.events import PaymentNotice
from commerce.providers import (
    Cancellation,
    Inbound,
    NotActedOn,
    Orphan,
    SumUpProvider,
    SumUpWebhooks,
    WebhookSource,
)
from commerce.providers.sumup_webhooks import SIGNATURE_HEADER, sign

SECRET = "sumup_whsec_test"
NOW = 1_726_145_004
UPDATED = "webhook.event.checkout_status_updated.json"
LEGACY = "webhook.legacy.checkout_status_changed.json"
CHECKOUT = "e24bab0f-1464-4ffe-b6a2-dc33eca5e1e9"  # the one the signed sample names
REFERENCE = "6bda4155-bb08-4e92-8068-8a4c41b47bf0"
LEGACY_CHECKOUT = "id-of-the-changed-checkout"


def read(name: str) -> bytes:
    path = SUMUP / name
    if not path.is_file():
        pytest.skip(f"payment fixtures not found at {SUMUP} (shared/ sits beside the repo)")
    return path.read_bytes()


def signed(body: bytes, t: int = NOW, secret: str = SECRET) -> dict[str, str]:
    """The header SumUp would send, computed here independently of the code under test."""
    mac = hmac.new(secret.encode(), b"v1:" + str(t).encode() + b":" + body, hashlib.sha256)
    return {SIGNATURE_HEADER: f"t={t},v1={mac.hexdigest()}"}


@pytest.fixture
def standin() -> Iterator[SumUpStandIn]:
    if not (SUMUP / "openapi").is_dir():
        pytest.skip("the recorded SumUp shapes (../shared/fixtures/payments) are not here")
    server = SumUpStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def api(standin: SumUpStandIn) -> SumUpProvider:
    return SumUpProvider(API_KEY, MERCHANT_CODE, base_url=standin.url, timeout=2.0)


@pytest.fixture
def source(api: SumUpProvider) -> SumUpWebhooks:
    return SumUpWebhooks(SECRET, api)


def receive(source: WebhookSource, body: bytes, headers: dict[str, str]) -> Inbound:
    """What a receiver does: authenticate, then decode."""
    source.authenticate(body, headers, now=NOW)
    return source.decode(body)


# -- the signature ---------------------------------------------------------------------


def test_the_recorded_event_signed_as_sumup_does_is_authentic(source: SumUpWebhooks) -> None:
    body = read(UPDATED)
    source.authenticate(body, signed(body), now=NOW)
    lower = {k.lower(): v for k, v in signed(body).items()}
    source.authenticate(body, lower, now=NOW)  # header names are case-blind
    assert sign(body, SECRET, NOW) == signed(body)[SIGNATURE_HEADER]


def test_a_wrong_secret_or_one_changed_byte_is_a_mismatch(source: SumUpWebhooks) -> None:
    body = read(UPDATED)
    with pytest.raises(SignatureMismatch):
        source.authenticate(body, signed(body, secret="other"), now=NOW)
    i = body.index(b"FAILED")
    tampered = body[:i] + b"P" + body[i + 1 :]  # one byte: "PAILED"
    with pytest.raises(SignatureMismatch):
        source.authenticate(tampered, signed(body), now=NOW)
    stripe_style = hmac.new(SECRET.encode(), f"{NOW}.".encode() + body, hashlib.sha256)
    with pytest.raises(SignatureMismatch):  # Stripe's scheme is not SumUp's
        source.authenticate(
            body, {SIGNATURE_HEADER: f"t={NOW},v1={stripe_style.hexdigest()}"}, now=NOW
        )


@pytest.mark.parametrize("headers", [{}, {SIGNATURE_HEADER: ""}, {"Stripe-Signature": "t=1,v1=0"}])
def test_no_signature_is_missing(source: SumUpWebhooks, headers: dict[str, str]) -> None:
    with pytest.raises(SignatureMissing, match=SIGNATURE_HEADER):
        source.authenticate(read(UPDATED), headers, now=NOW)


@pytest.mark.parametrize("value", ["garbage", f"t=soon,v1={'0' * 64}", f"v1={'0' * 64}"])
def test_a_header_that_cannot_be_parsed_is_malformed(source: SumUpWebhooks, value: str) -> None:
    with pytest.raises(SignatureMalformed):
        source.authenticate(read(UPDATED), {SIGNATURE_HEADER: value}, now=NOW)


@pytest.mark.parametrize("skew", [-301, 301])
def test_outside_300_seconds_either_way_is_expired(source: SumUpWebhooks, skew: int) -> None:
    body = read(UPDATED)
    source.authenticate(body, signed(body, t=NOW + (300 if skew > 0 else -300)), now=NOW)
    with pytest.raises(SignatureExpired):
        source.authenticate(body, signed(body, t=NOW + skew), now=NOW)


def test_several_v1_are_accepted_while_a_secret_rolls(source: SumUpWebhooks) -> None:
    body = read(UPDATED)
    old = signed(body, secret="sumup_whsec_old")[SIGNATURE_HEADER].split(",")[1]
    new = signed(body)[SIGNATURE_HEADER]
    source.authenticate(body, {SIGNATURE_HEADER: f"{new}, {old}"}, now=NOW)
    t, good = new.split(",")
    source.authenticate(body, {SIGNATURE_HEADER: f"{t},{old},{good}"}, now=NOW)


def test_the_legacy_notice_passes_unsigned_only_in_its_exact_shape(
    api: SumUpProvider, source: SumUpWebhooks
) -> None:
    legacy = read(LEGACY)
    source.authenticate(legacy, {}, now=NOW)
    for body in (
        b'{"event_type":"CHECKOUT_STATUS_CHANGED","id":"c1","status":"PAID"}',
        b'{"event_type":"CHECKOUT_STATUS_CHANGED","id":"../me/refund/x"}',
        b'{"event_type":"CHECKOUT_STATUS_CHANGED","id":"c1","id":"c2"}',
        b'{"event_type":"checkout.status.updated","id":"c1"}',
    ):
        with pytest.raises(SignatureMissing):
            source.authenticate(body, {}, now=NOW)
    strict = SumUpWebhooks(SECRET, api, accept_legacy=False)
    with pytest.raises(SignatureMissing):
        strict.authenticate(legacy, {}, now=NOW)


def test_without_a_secret_only_legacy_notices_pass(api: SumUpProvider) -> None:
    source = SumUpWebhooks(None, api)
    source.authenticate(read(LEGACY), {}, now=NOW)
    body = read(UPDATED)
    with pytest.raises(SignatureMismatch, match="no SumUp signing secret"):
        source.authenticate(body, signed(body), now=NOW)
    with pytest.raises(SignatureMissing):
        source.authenticate(body, {}, now=NOW)


# -- signed events, confirmed ----------------------------------------------------------


def test_the_recorded_failed_event_reports_the_apis_failure_and_amount(
    standin: SumUpStandIn, source: SumUpWebhooks
) -> None:
    standin.add(CHECKOUT, Decimal("19.99"), "EUR", reference=REFERENCE)
    standin.fail(CHECKOUT)
    body = read(UPDATED)
    inbound = receive(source, body, signed(body))
    assert inbound == Inbound(
        provider="sumup",
        event_id="sumup:c56dc7d23e1dad876cb1e2954854db9e",
        event_type="checkout.status.updated",
        fact=PaymentNotice(
            event_id="sumup:c56dc7d23e1dad876cb1e2954854db9e",
            intent_id=CHECKOUT,
            succeeded=False,
            amount=1999,
            currency="EUR",
            reason="SumUp reports the checkout failed",
        ),
        order_hint=REFERENCE,
    )
    lower = body.replace(b'"FAILED"', b'"failed"')
    assert receive(source, lower, signed(lower)) == inbound


def as_paid(body: bytes) -> bytes:
    return body.replace(b'"FAILED"', b'"PAID"')


def test_a_paid_event_is_a_payment_only_when_the_api_says_paid(
    standin: SumUpStandIn, source: SumUpWebhooks
) -> None:
    """While the API still says pending, the event is answered "try again" (retryable), not
    decided: deciding it would record it as seen and ignore SumUp's redelivery."""
    standin.add(CHECKOUT, Decimal("1000"), "JPY", reference=REFERENCE)
    body = as_paid(read(UPDATED))
    with pytest.raises(ProviderUnavailable) as lagging:
        receive(source, body, signed(body))
    assert lagging.value.code == "not_confirmed_yet"
    standin.pay(CHECKOUT)
    paid = receive(source, body, signed(body)).fact
    assert isinstance(paid, PaymentNotice) and paid.succeeded
    assert (paid.intent_id, paid.amount, paid.currency) == (CHECKOUT, 1000, "JPY")


def test_a_paid_event_for_a_failed_checkout_reports_the_failure(
    standin: SumUpStandIn, source: SumUpWebhooks
) -> None:
    standin.add(CHECKOUT, Decimal("5"), "EUR", reference=REFERENCE)
    standin.fail(CHECKOUT)
    body = as_paid(read(UPDATED))
    fact = receive(source, body, signed(body)).fact
    assert isinstance(fact, PaymentNotice) and not fact.succeeded


def test_expired_is_a_cancellation(standin: SumUpStandIn, source: SumUpWebhooks) -> None:
    standin.add(CHECKOUT, Decimal("5"), "EUR", reference=REFERENCE)
    standin.expire(CHECKOUT)
    body = read(UPDATED).replace(b'"FAILED"', b'"expired"')
    assert receive(source, body, signed(body)).fact == Cancellation(intent_id=CHECKOUT)


@pytest.mark.parametrize("status", [b'"PENDING"', b'"pending"', b'"SOMETHING_NEW"'])
def test_pending_and_unknown_statuses_are_not_acted_on_without_asking(
    standin: SumUpStandIn, source: SumUpWebhooks, status: bytes
) -> None:
    body = read(UPDATED).replace(b'"FAILED"', status)
    inbound = receive(source, body, signed(body))
    assert isinstance(inbound.fact, NotActedOn) and inbound.order_hint == REFERENCE
    assert standin.requests == []


def test_unknown_event_types_are_not_acted_on(standin: SumUpStandIn, source: SumUpWebhooks) -> None:
    body = read(UPDATED).replace(b"checkout.status.updated", b"member.created")
    inbound = receive(source, body, signed(body))
    assert inbound.event_id == "sumup:c56dc7d23e1dad876cb1e2954854db9e"
    assert isinstance(inbound.fact, NotActedOn) and "member.created" in inbound.fact.reason
    assert standin.requests == []


def test_a_signed_event_for_a_checkout_sumup_does_not_know_is_an_orphan(
    source: SumUpWebhooks,
) -> None:
    body = read(UPDATED)
    fact = receive(source, body, signed(body)).fact
    assert isinstance(fact, Orphan) and fact.intent_id == CHECKOUT


def test_an_api_outage_while_confirming_is_retryable(
    standin: SumUpStandIn, source: SumUpWebhooks
) -> None:
    standin.add(CHECKOUT, Decimal("5"), "EUR", reference=REFERENCE)
    standin.fail_next("server_error")
    body = read(UPDATED)
    with pytest.raises(ProviderUnavailable):
        receive(source, body, signed(body))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "invalid JSON"),
        (b'{"id":"x"}', "event_type"),
        (b'{"id":"e1","event_type":"checkout.status.updated","payload":{}}', "checkout_id"),
        (b'{"id":"e1","event_type":"checkout.status.updated","id":"e2"}', "duplicate"),
    ],
)
def test_a_body_that_is_not_an_event_is_malformed(
    source: SumUpWebhooks, body: bytes, fragment: str
) -> None:
    source.authenticate(body, signed(body), now=NOW)
    with pytest.raises(MalformedEvent, match=fragment):
        source.decode(body)


# -- the legacy notice, confirmed ------------------------------------------------------


def test_the_recorded_legacy_notice_confirmed_paid_is_a_payment_of_the_apis_amount(
    standin: SumUpStandIn, source: SumUpWebhooks
) -> None:
    standin.add(LEGACY_CHECKOUT, Decimal("19.99"), "EUR", reference="ord_legacy")
    body = read(LEGACY)
    waiting = receive(source, body, {})
    assert isinstance(waiting.fact, NotActedOn)
    assert waiting.event_id == f"sumup:{LEGACY_CHECKOUT}:pending"
    standin.pay(LEGACY_CHECKOUT)
    inbound = receive(source, body, {})
    assert inbound == Inbound(
        provider="sumup",
        event_id=f"sumup:{LEGACY_CHECKOUT}:paid",
        event_type="CHECKOUT_STATUS_CHANGED",
        fact=PaymentNotice(
            event_id=f"sumup:{LEGACY_CHECKOUT}:paid",
            intent_id=LEGACY_CHECKOUT,
            succeeded=True,
            amount=1999,
            currency="EUR",
        ),
        order_hint="ord_legacy",
    )
    assert receive(source, body, {}) == inbound  # a repeat is the same event id: deduplicated


def test_a_forged_legacy_notice_changes_nothing(
    standin: SumUpStandIn, source: SumUpWebhooks
) -> None:
    standin.add("c_real", Decimal("5"), "EUR")
    before = {k: dict(v) for k, v in standin.checkouts.items()}
    body = b'{"event_type":"CHECKOUT_STATUS_CHANGED","id":"c_forged"}'
    inbound = receive(source, body, {})
    assert isinstance(inbound.fact, NotActedOn) and "not confirmed" in inbound.fact.reason
    assert inbound.event_id == "sumup:c_forged:unknown"
    assert [r[:2] for r in standin.requests] == [("GET", "/v0.1/checkouts/c_forged")]
    assert standin.checkouts == before and standin.refunds == []
