"""SumUp through `orderflow serve` over real HTTP: its recorded events, each confirmed with
SumUp's API (the local stand-in) before anything is decided, its signature refused when bad,
and its unsigned legacy notice acted on only once the API says the checkout is paid."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from service_helpers import BIN, Server, env, events, fulfilled, received
from sumup_standin import API_KEY, MERCHANT_CODE, OPENAPI, SUMUP, SumUpStandIn

from commerce import Money, Shop, SumUpProvider
from commerce.providers.sumup_webhooks import SIGNATURE_HEADER, sign

pytestmark = pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
SECRET = "sumup_whsec_service"
PATH = "/webhooks/sumup"
UPDATED = SUMUP / "webhook.event.checkout_status_updated.json"
LEGACY = SUMUP / "webhook.legacy.checkout_status_changed.json"
RECORDED_CHECKOUT = b"e24bab0f-1464-4ffe-b6a2-dc33eca5e1e9"
RECORDED_REFERENCE = b"6bda4155-bb08-4e92-8068-8a4c41b47bf0"
RECORDED_ID = b"c56dc7d23e1dad876cb1e2954854db9e"


@pytest.fixture
def standin() -> Iterator[SumUpStandIn]:
    if not (OPENAPI.is_dir() and UPDATED.is_file() and LEGACY.is_file()):
        pytest.skip("the recorded SumUp shapes (../shared/fixtures/payments) are not here")
    server = SumUpStandIn().start()
    yield server
    server.stop()


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(body, secret, int(time.time()) if at is None else at)}


def checkouts(db: Path, standin: SumUpStandIn, orders: list[str]) -> dict[str, str]:
    """A shop on SumUp with `orders` awaiting payment; each order's checkout id."""
    provider = SumUpProvider(API_KEY, MERCHANT_CODE, base_url=standin.url)
    with Shop.open(db, provider=provider) as shop:
        shop.add_product("MUG", "Mug", Money(1999, "EUR"), stock=10)
        found = {}
        for order_id in orders:
            intent = shop.start_order([("MUG", 1)], order_id=order_id).order.intent_id
            assert intent is not None
            found[order_id] = intent
    return found


def updated(checkout: str, reference: str, status: bytes) -> bytes:
    """The recorded `checkout.status.updated` event pointed at one of our checkouts (and
    re-id'd: one event id per event, as SumUp sends)."""
    body = UPDATED.read_bytes().replace(RECORDED_CHECKOUT, checkout.encode())
    body = body.replace(RECORDED_ID, f"evt_{reference}".encode())
    return body.replace(RECORDED_REFERENCE, reference.encode()).replace(b'"FAILED"', status)


def serve(db: Path, standin: SumUpStandIn) -> Server:
    return Server(
        db,
        environ=env(
            ORDERFLOW_PROVIDER="sumup",
            SUMUP_API_KEY=API_KEY,
            SUMUP_MERCHANT_CODE=MERCHANT_CODE,
            SUMUP_API_BASE=standin.url,
            SUMUP_WEBHOOK_SECRET=SECRET,
        ),
    )


def outcome(answer: tuple[int, dict[str, str], Any]) -> tuple[int, str]:
    status, _, body = answer
    return status, body.get("outcome", body.get("kind"))


def test_sumups_recorded_events_settle_through_the_service(
    tmp_path: Path, standin: SumUpStandIn
) -> None:
    db = tmp_path / "shop.db"
    ids = checkouts(db, standin, ["paid", "failed", "legacy"])
    standin.pay(ids["paid"])
    standin.fail(ids["failed"])
    paid = updated(ids["paid"], "paid", b'"PAID"')
    failed = updated(ids["failed"], "failed", b'"FAILED"')
    legacy = LEGACY.read_bytes().replace(b"id-of-the-changed-checkout", ids["legacy"].encode())
    server = serve(db, standin)
    try:
        answers = {
            "recorded as is": server.post(PATH, UPDATED.read_bytes(), signed(UPDATED.read_bytes())),
            "paid": server.post(PATH, paid, signed(paid)),
            "paid again": server.post(PATH, paid, signed(paid)),
            "failed": server.post(PATH, failed, signed(failed)),
            "legacy, still pending": server.post(PATH, legacy, {}),
        }
        standin.pay(ids["legacy"])
        answers["legacy, paid"] = server.post(PATH, legacy, {})
        answers["legacy, again"] = server.post(PATH, legacy, {})
    finally:
        assert server.stop() == 0, server.logs()
    assert {name: outcome(answer) for name, answer in answers.items()} == {
        "recorded as is": (200, "recorded"),  # a checkout SumUp's API does not know: an orphan
        "paid": (200, "settled"),
        "paid again": (200, "already_settled"),
        "failed": (200, "recorded"),  # the attempt failed; the order still awaits payment
        "legacy, still pending": (200, "ignored"),  # unsigned: only the API's word counts
        "legacy, paid": (200, "settled"),
        "legacy, again": (200, "already_settled"),
    }
    assert "does not know checkout" in answers["recorded as is"][2]["reason"]
    assert fulfilled(db) == {"paid": 1, "legacy": 1}
    assert events(db, "OrderClosed") == []
    with Shop.open(db, readonly=True) as shop:
        assert shop.order("failed").order.status == "awaiting_payment"


def test_bad_sumup_signatures_are_400_and_write_nothing(
    tmp_path: Path, standin: SumUpStandIn
) -> None:
    db = tmp_path / "shop.db"
    ids = checkouts(db, standin, ["o1"])
    standin.pay(ids["o1"])
    body = updated(ids["o1"], "o1", b'"PAID"')
    cases = {
        "forged": signed(body, "sumup_whsec_forged"),
        "missing": {},
        "garbled": {SIGNATURE_HEADER: "t=1"},
        "expired": signed(body, at=int(time.time()) - 3600),
        "another body": signed(body + b" "),
    }
    server = serve(db, standin)
    try:
        answers = {name: server.post(PATH, body, headers) for name, headers in cases.items()}
        refused = received(db)  # read beside the server: nothing of them was written
        settled = server.post(PATH, body, signed(body))
    finally:
        assert server.stop() == 0, server.logs()
    assert {name: outcome(answer) for name, answer in answers.items()} == {
        "forged": (400, "SignatureMismatch"),
        "missing": (400, "SignatureMissing"),
        "garbled": (400, "SignatureMissing"),  # a header with no v1 signature in it
        "expired": (400, "SignatureExpired"),
        "another body": (400, "SignatureMismatch"),
    }
    assert refused == {}
    assert outcome(settled) == (200, "settled")
    assert fulfilled(db) == {"o1": 1}
