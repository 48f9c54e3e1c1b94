from __future__ import annotations

from pathlib import Path

import pytest

from commerce.errors import BodyTooLarge, MalformedEvent
from commerce.money import Money
from commerce.stripe_events import MAX_BODY
from commerce.sumup_events import (
    SumUpCheckout,
    SumUpNotice,
    decode_checkout,
    decode_checkouts,
    decode_notice,
)

SUMUP = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "payments" / "sumup"


def read(relative: str) -> bytes:
    path = SUMUP / relative
    if not path.is_file():
        pytest.skip(f"payment fixtures not found at {SUMUP} (shared/ sits beside the repo)")
    return path.read_bytes()


def test_legacy_notice_carries_only_the_checkout_id() -> None:
    notice = decode_notice(read("webhook.legacy.checkout_status_changed.json"))
    assert notice == SumUpNotice(
        event_type="CHECKOUT_STATUS_CHANGED",
        event_id=None,
        checkout_id="id-of-the-changed-checkout",
    )


def test_status_updated_notice_is_lower_cased() -> None:
    notice = decode_notice(read("webhook.event.checkout_status_updated.json"))
    assert notice.event_id == "c56dc7d23e1dad876cb1e2954854db9e"
    assert notice.checkout_id == "e24bab0f-1464-4ffe-b6a2-dc33eca5e1e9"
    assert notice.reference == "6bda4155-bb08-4e92-8068-8a4c41b47bf0"
    assert notice.status == "failed"
    lower = read("webhook.event.checkout_status_updated.json").replace(b'"FAILED"', b'"failed"')
    assert decode_notice(lower) == notice


@pytest.mark.parametrize(
    "name",
    ["checkout.retrieve_response.json", "checkout.create_response.Checkout.json"],
)
def test_checkout_amounts_are_exact(name: str) -> None:
    checkout = decode_checkout(read(f"openapi/{name}"))
    assert isinstance(checkout, SumUpCheckout)
    assert checkout.money == Money(1010, "EUR")  # 10.1 EUR, read as a decimal
    assert checkout.status == "pending"


def test_the_paid_transaction_and_hosted_page_are_found_in_either_shape() -> None:
    listed = "410fc44a-5956-44e1-b5cc-19c6f8d727a4"
    assert (
        decode_checkout(read("openapi/checkout.create_response.Checkout.json")).transaction_id
        == listed
    )
    top_level = decode_checkout(read("openapi/checkout.retrieve_response.json"))
    assert top_level.transaction_id == listed  # named beside the checkout, not in transactions[]
    hosted = decode_checkout(read("openapi/checkout.create_response.HostedCheckout.json"))
    assert hosted.transaction_id is None and hosted.money == Money(1200, "EUR")
    assert (
        hosted.checkout_url == "https://checkout.sumup.com/pay/8f9316a3-cda9-42a9-9771-54d534315676"
    )
    failed = (
        b'{"id":"c1","amount":1,"currency":"EUR","status":"FAILED",'
        b'"transactions":[{"id":"t1","status":"FAILED"}]}'
    )
    assert decode_checkout(failed).transaction_id is None  # nothing was paid to refund


def test_a_list_of_checkouts() -> None:
    (listed,) = decode_checkouts(read("openapi/checkout.list_response.json"))
    assert (listed.checkout_id, listed.money) == (
        "4e425463-3e1b-431d-83fa-1e51c2925e99",
        Money(1010, "EUR"),
    )
    with pytest.raises(MalformedEvent):
        decode_checkouts(read("openapi/checkout.retrieve_response.json"))  # one, not a list


def test_checkout_decimal_amount_that_floats_get_wrong() -> None:
    body = b'{"id":"c1","amount":19.99,"currency":"EUR","status":"PAID"}'
    assert decode_checkout(body).amount == 1999


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"id":"c1","amount":19.999,"currency":"EUR","status":"PAID"}', "at most 2 decimals"),
        (b'{"id":"c1","amount":1,"currency":"XXX","status":"PAID"}', "unknown currency"),
        (b'{"id":"c1","currency":"EUR","status":"PAID"}', "missing required field `amount`"),
        (b'{"id":"c1","amount":', "invalid JSON"),
    ],
)
def test_bad_checkouts(body: bytes, fragment: str) -> None:
    with pytest.raises(MalformedEvent, match=fragment):
        decode_checkout(body)


def test_bad_notices() -> None:
    with pytest.raises(MalformedEvent, match="missing required field `event_type`"):
        decode_notice(b'{"id":"x"}')
    with pytest.raises(BodyTooLarge):
        decode_notice(b" " * (MAX_BODY + 1))
