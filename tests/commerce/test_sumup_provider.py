"""The SumUp provider over real HTTP to a local stand-in: requests, exact amounts, the
checkout reference as the idempotency key (also across a kill -9), and error mapping."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sumup_standin import API_KEY, MERCHANT_CODE, OPENAPI, SumUpStandIn

from commerce.errors import InvalidRequest, ProviderUnavailable, RateLimited
from commerce.money import Money
from commerce.providers import SumUpProvider
from commerce.providers.sumup import _error

TIMEOUT = 0.5
_orders = itertools.count()


def order_id() -> str:
    return f"ord_{os.getpid()}_{next(_orders)}"


def start() -> SumUpStandIn:
    if not OPENAPI.is_dir():
        pytest.skip("the recorded SumUp shapes (../shared/fixtures/payments) are not here")
    return SumUpStandIn(hang_seconds=TIMEOUT * 3).start()


@pytest.fixture
def standin() -> Iterator[SumUpStandIn]:
    server = start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_standin() -> Iterator[SumUpStandIn]:
    server = start()
    yield server
    server.stop()


def client(standin: SumUpStandIn, **options: object) -> SumUpProvider:
    return SumUpProvider(
        API_KEY,
        MERCHANT_CODE,
        base_url=standin.url,
        timeout=TIMEOUT,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture
def sumup(standin: SumUpStandIn) -> SumUpProvider:
    return client(standin, return_url="https://shop.example/webhooks/sumup")


def test_create_sends_the_reference_an_exact_decimal_amount_and_asks_for_a_hosted_page(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    intent = sumup.create_intent("ord_1", Money(1999, "EUR"), idempotency_key="ord_1:3")
    assert (intent.order_id, intent.amount, intent.currency) == ("ord_1", 1999, "EUR")
    assert intent.status == "requires_payment_method" and intent.intent_id in standin.checkouts
    assert intent.checkout_url and intent.checkout_url.startswith("https://checkout.sumup.com/")
    method, path, body, headers = standin.requests[-1]
    assert (method, path) == ("POST", "/v0.1/checkouts")
    assert body["amount"] == Decimal("19.99") and isinstance(body["amount"], Decimal)  # a number
    assert (body["checkout_reference"], body["currency"]) == ("ord_1", "EUR")
    assert body["merchant_code"] == MERCHANT_CODE and body["hosted_checkout"] == {"enabled": True}
    assert body["return_url"] == "https://shop.example/webhooks/sumup"
    assert headers["authorization"] == f"Bearer {API_KEY}"
    assert headers["content-type"] == "application/json"
    assert "idempotency-key" not in headers  # SumUp has none: the reference is the key


@pytest.mark.parametrize(
    ("money", "major"),
    [
        (Money(500, "JPY"), Decimal("500")),
        (Money(1234, "BHD"), Decimal("1.234")),
        (Money(1010, "EUR"), Decimal("10.1")),
    ],
)
def test_amounts_in_major_units_per_currency(
    standin: SumUpStandIn, money: Money, major: Decimal
) -> None:
    intent = client(standin, hosted=False).create_intent(order_id(), money, idempotency_key="k")
    (_, _, body, _) = standin.requests[-1]
    assert body["amount"] == major and "hosted_checkout" not in body
    assert intent.money == money and intent.checkout_url is None


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["JPY", "EUR", "BHD"]),
    st.integers(min_value=1, max_value=10**15),
)
def test_create_then_retrieve_round_trips_exactly(
    shared_standin: SumUpStandIn, currency: str, minor: int
) -> None:
    sumup = client(shared_standin)
    made = sumup.create_intent(order_id(), Money(minor, currency), idempotency_key="k")
    assert made.money == Money(minor, currency)
    assert sumup.retrieve(made.intent_id) == made


def test_statuses_map_onto_the_neutral_ones_whatever_their_case(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    ids = [
        sumup.create_intent(order_id(), Money(100, "EUR"), idempotency_key="k").intent_id
        for _ in range(4)
    ]
    standin.pay(ids[0])
    standin.fail(ids[1])
    standin.expire(ids[2])
    standin.checkouts[ids[3]]["status"] = "paid"  # the lower case the schema lists
    statuses = [sumup.retrieve(i).status for i in ids]
    assert statuses == ["succeeded", "failed", "canceled", "succeeded"]
    standin.checkouts[ids[3]]["status"] = "SOMETHING_NEW"
    assert sumup.retrieve(ids[3]).status == "processing"  # not final: nothing acts on it


def test_a_second_create_for_the_order_returns_the_first_checkout(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    first = sumup.create_intent("ord_2", Money(700, "EUR"), idempotency_key="a")
    again = sumup.create_intent("ord_2", Money(700, "EUR"), idempotency_key="b")
    assert again == first and list(standin.checkouts) == [first.intent_id]
    assert [p for m, p, _, _ in standin.requests if m == "GET"] == [
        "/v0.1/checkouts?checkout_reference=ord_2",
        f"/v0.1/checkouts/{first.intent_id}",
    ]


def test_a_checkout_for_the_order_with_other_money_is_refused(sumup: SumUpProvider) -> None:
    sumup.create_intent("ord_3", Money(700, "EUR"), idempotency_key="a")
    for other in (Money(800, "EUR"), Money(700, "GBP")):
        with pytest.raises(InvalidRequest, match=r"7\.00 EUR for 'ord_3'") as info:
            sumup.create_intent("ord_3", other, idempotency_key="b")
        assert info.value.code == "checkout_mismatch" and not info.value.retryable


def test_a_hang_past_the_timeout_is_unavailable_and_the_retry_finds_the_checkout(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    standin.fail_next("hang")
    with pytest.raises(ProviderUnavailable) as info:
        sumup.create_intent("ord_4", Money(700, "EUR"), idempotency_key="k")
    assert info.value.retryable and info.value.code == "network"
    assert len(standin.checkouts) == 1  # SumUp made it; we never heard
    intent = sumup.create_intent("ord_4", Money(700, "EUR"), idempotency_key="k")
    assert list(standin.checkouts) == [intent.intent_id] and intent.checkout_url


CHILD = """
import sys
from commerce.money import Money
from commerce.providers import SumUpProvider
sumup = SumUpProvider(sys.argv[1], sys.argv[2], base_url=sys.argv[3], timeout=60)
sumup.create_intent("ord_killed", Money(4250, "EUR"), idempotency_key="ord_killed:1")
print("answered")
"""


def test_a_retry_after_a_kill_9_mid_create_makes_one_checkout(standin: SumUpStandIn) -> None:
    standin.hang_seconds = 30  # the child never hears back before it is killed
    standin.fail_next("hang")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, API_KEY, MERCHANT_CODE, standin.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert standin.created.wait(60), "the child's create never reached the stand-in"
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL and b"answered" not in out
    (made,) = standin.checkouts
    intent = client(standin).create_intent(
        "ord_killed", Money(4250, "EUR"), idempotency_key="ord_killed:1"
    )
    assert intent.intent_id == made and len(standin.checkouts) == 1
    assert intent.money == Money(4250, "EUR")


def test_cancel_deactivates_and_is_repeatable_but_not_for_a_paid_checkout(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    open_ = sumup.create_intent(order_id(), Money(500, "EUR"), idempotency_key="k")
    canceled = sumup.cancel(open_.intent_id, idempotency_key="c")
    assert canceled.status == "canceled" and canceled.money == open_.money
    assert standin.requests[-1][:2] == ("DELETE", f"/v0.1/checkouts/{open_.intent_id}")
    assert sumup.cancel(open_.intent_id, idempotency_key="c") == canceled  # 409, looked into
    paid = sumup.create_intent(order_id(), Money(500, "EUR"), idempotency_key="k")
    standin.pay(paid.intent_id)
    with pytest.raises(InvalidRequest, match="Checkout is already processed") as info:
        sumup.cancel(paid.intent_id, idempotency_key="c")
    assert info.value.code == "CHECKOUT_PROCESSED"


def test_refund_goes_to_the_paid_transaction_in_exact_major_units(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    intent = sumup.create_intent(order_id(), Money(900, "EUR"), idempotency_key="k")
    transaction = standin.pay(intent.intent_id)
    refund = sumup.refund(intent.intent_id, Money(401, "EUR"), idempotency_key="r1")
    assert (refund.intent_id, refund.amount, refund.currency) == (intent.intent_id, 401, "EUR")
    assert standin.requests[-1][:3] == (
        "POST",
        f"/v0.1/me/refund/{transaction}",
        {"amount": Decimal("4.01")},
    )
    assert sumup.refund(intent.intent_id, Money(499, "EUR"), idempotency_key="r2").amount == 499
    assert standin.refunds == [(transaction, Decimal("4.01")), (transaction, Decimal("4.99"))]
    with pytest.raises(InvalidRequest, match="Refund exceeds"):
        sumup.refund(intent.intent_id, Money(1, "EUR"), idempotency_key="r3")


def test_refund_refuses_an_unpaid_checkout_and_other_currencies(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    intent = sumup.create_intent(order_id(), Money(900, "EUR"), idempotency_key="k")
    with pytest.raises(InvalidRequest, match="no payment to refund") as info:
        sumup.refund(intent.intent_id, Money(900, "EUR"), idempotency_key="r")
    assert info.value.code == "not_paid"
    standin.pay(intent.intent_id)
    with pytest.raises(InvalidRequest, match="in EUR, not GBP"):
        sumup.refund(intent.intent_id, Money(900, "GBP"), idempotency_key="r")
    assert standin.refunds == []


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ("rate_limited", RateLimited, "TOO_MANY_REQUESTS"),
        ("server_error", ProviderUnavailable, "INTERNAL_ERROR"),
        ("unreadable", ProviderUnavailable, "bad_answer"),
    ],
)
def test_429_5xx_and_unreadable_answers_are_retryable(
    standin: SumUpStandIn, sumup: SumUpProvider, fault: str, error: type[Exception], code: str
) -> None:
    standin.fail_next(fault)
    with pytest.raises(error) as info:
        sumup.create_intent("ord_5", Money(700, "EUR"), idempotency_key="k")
    assert getattr(info.value, "retryable", False) and getattr(info.value, "code", "") == code
    intent = sumup.create_intent("ord_5", Money(700, "EUR"), idempotency_key="k")
    assert list(standin.checkouts) == [intent.intent_id]


def test_an_answer_with_inexact_money_is_a_typed_error(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    intent = sumup.create_intent(order_id(), Money(700, "EUR"), idempotency_key="k")
    standin.checkouts[intent.intent_id]["amount"] = Decimal("7.001")
    with pytest.raises(ProviderUnavailable, match="at most 2 decimals") as info:
        sumup.retrieve(intent.intent_id)
    assert info.value.code == "bad_answer"


def test_nobody_listening_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = SumUpProvider(
        API_KEY, MERCHANT_CODE, base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT
    )
    with pytest.raises(ProviderUnavailable, match="SumUp unreachable") as info:
        provider.retrieve("c_nothing")
    assert info.value.code == "network"


def test_4xx_are_final_with_sumups_code_and_message(
    standin: SumUpStandIn, sumup: SumUpProvider
) -> None:
    wrong = SumUpProvider("sup_sk_wrong", MERCHANT_CODE, base_url=standin.url, timeout=TIMEOUT)
    with pytest.raises(InvalidRequest, match="SumUp 401: Unauthorized") as info:
        wrong.retrieve("c_x")
    assert info.value.code == "NOT_AUTHORIZED"
    with pytest.raises(InvalidRequest, match="SumUp 404: Resource not found") as info:
        sumup.retrieve("c_unknown")
    assert info.value.code == "NOT_FOUND" and not info.value.retryable
    with pytest.raises(InvalidRequest, match=r"SumUp 400: Validation error \(amount\)") as info:
        sumup.create_intent(order_id(), Money(0, "EUR"), idempotency_key="k")  # a list body
    assert info.value.code == "INVALID"


@pytest.mark.parametrize(
    ("name", "status", "shown", "code"),
    [
        ("error.400.missing_parameter.json", 400, "Validation error (merchant_code)", "MISSING"),
        ("error.404.not_found.json", 404, "Resource not found", "NOT_FOUND"),
        ("error.409.checkout_processed.json", 409, "Checkout is already processed", None),
        ("error.409.duplicated_checkout.json", 409, "Checkout with this checkout", None),
    ],
)
def test_each_recorded_error_body_maps_with_its_message(
    name: str, status: int, shown: str, code: str | None
) -> None:
    if not OPENAPI.is_dir():
        pytest.skip("the recorded SumUp shapes are not here")
    raw = (OPENAPI / name).read_bytes()
    error = _error(status, raw)
    assert isinstance(error, InvalidRequest) and shown in str(error)
    assert error.code == (code or name.split(".")[2].upper())
    assert isinstance(_error(503, b"<html>busy</html>"), ProviderUnavailable)


def test_the_client_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="API key"):
        SumUpProvider("", MERCHANT_CODE)
    with pytest.raises(ValueError, match="merchant code"):
        SumUpProvider(API_KEY, "")
    with pytest.raises(ValueError, match="http"):
        SumUpProvider(API_KEY, MERCHANT_CODE, base_url="ftp://example.com")
