"""The operator's commands of issue 11: `order review`, `flows resume`/`parked`, and the
usage errors and idempotent repeats a user hit."""

from __future__ import annotations

import json

import pytest
from cli_helpers import error_line, script

from commerce.flows import ORDER_FLOW
from commerce.requests import PlaceOrder, QuoteOrder
from flowlib import REGISTRY, Flow


def test_order_review_accept(shop_db, as_json):
    shop_db("order", "start", "--item", "MUG=2", "--order-id", "o1")
    assert as_json("order", "settle", "o1", "--amount", "10.00")["order_status"] == "needs_review"
    held = as_json("order", "list", "--status", "needs_review")
    assert [o["order_id"] for o in held] == ["o1"]
    text = shop_db("order", "review", "o1", "--accept", "--reason", "paid the rest").stdout
    assert "order o1 is fulfilled" in text and "paid 10.00 EUR" in text
    mug = next(p for p in as_json("catalog", "list") if p["sku"] == "MUG")
    assert (mug["available"], mug["reserved"], mug["sold"]) == (8, 0, 2)


def test_order_review_refund_and_refusals(shop_db, as_json):
    shop_db("order", "start", "--item", "MUG=2", "--order-id", "o1")
    assert "awaiting_payment" in error_line(shop_db("order", "review", "o1", "--refund", code=1))
    shop_db("order", "settle", "o1", "--amount", "0")  # a zero payment: held, not "refunded"
    shown = shop_db("order", "show", "o1").stdout
    assert "needs review" in shown and "paid 0.00 EUR, quoted 25.00 EUR" in shown
    assert shop_db("order", "review", "o1", code=2).exit_code == 2  # neither option
    assert shop_db("order", "review", "o1", "--accept", "--refund", code=2).exit_code == 2
    view = as_json("order", "review", "o1", "--refund")
    assert view["order"]["status"] == "refunded"
    mug = next(p for p in as_json("catalog", "list") if p["sku"] == "MUG")
    assert (mug["available"], mug["reserved"]) == (10, 0)


@pytest.mark.parametrize(
    "command",
    [("order", "list"), ("flows", "list"), ("flows", "export")],
    ids=lambda c: " ".join(c),
)
def test_an_unknown_status_is_a_usage_error(shop_db, command):
    result = shop_db(*command, "--status", "shipped", code=2)
    assert "unknown status 'shipped'" in result.stderr


def test_a_free_order_through_the_command_line(shop_db, as_json):
    shop_db("catalog", "coupon", "FREE", "--percent-off", "100")
    view = as_json("order", "start", "--item", "MUG=1", "--coupon", "FREE", "--order-id", "f1")
    assert (view["order"]["status"], view["order"]["paid"]) == ("fulfilled", 0)


def test_the_same_order_id_with_other_lines_is_refused(shop_db):
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o2")
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o2")  # the same: fine
    line = error_line(shop_db("order", "start", "--item", "TEE=1", "--order-id", "o2", code=1))
    assert "'o2' exists with other lines" in line


def _edited(order: PlaceOrder) -> Flow[str]:
    yield QuoteOrder(order_id=order.order_id, lines=order.lines, coupon="EDITED")
    return "never"


def test_flows_resume_after_a_fix_applies_what_was_parked(shop_db, as_json, tmp_path):
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o1")
    body = tmp_path / "evt.json"
    body.write_text(shop_db("webhook", "event", "o1", "--event-id", "evt_1").stdout)
    header = shop_db("webhook", "sign", str(body), "--secret", "s").stdout.strip()
    original = REGISTRY.get(ORDER_FLOW)
    REGISTRY.register(ORDER_FLOW, original.version, _edited)  # a bad deploy
    try:
        parked = as_json("webhook", "deliver", str(body), "--signature", header, "--secret", "s")
        assert parked["outcome"] == "recorded" and "parked" in parked["reason"]
        assert "STILL STUCK o1" in shop_db("flows", "resume", "--all-stuck", code=1).stdout
    finally:
        REGISTRY.register(ORDER_FLOW, original.version, original.fn)  # the fix
    assert [p["event_id"] for p in as_json("flows", "parked")] == ["evt_1"]
    assert "1 parked event(s)" in shop_db("flows", "why", "o1").stdout
    text = shop_db("flows", "resume", "--all-stuck").stdout
    assert "resumed o1: completed" in text and "parked evt_1: settled" in text
    assert as_json("flows", "parked") == []
    assert as_json("order", "show", "o1")["order"]["status"] == "fulfilled"
    assert shop_db("flows", "resume", "--all-stuck").stdout.strip() == "no stuck flows"
    assert shop_db("flows", "resume", code=2).exit_code == 2


def test_an_orphan_event_is_answered_zero_by_a_real_process(shop_db, orderflow_bin, tmp_path):
    """pay-rails' `payment_intent: "pm_1234"` is authentic and well formed: exit 0, kept."""
    event = {
        "id": "evt_orphan",
        "object": "event",
        "type": "charge.refunded",
        "livemode": False,
        "created": 1700000000,
        "data": {
            "object": {
                "id": "ch_chargeid",
                "amount": 1500,
                "amount_refunded": 500,
                "refunded": False,
                "currency": "usd",
                "payment_intent": "pm_1234",
            }
        },
    }
    body = tmp_path / "orphan.json"
    body.write_text(json.dumps(event))
    db = shop_db.db  # type: ignore[attr-defined]
    header = shop_db("webhook", "sign", str(body), "--secret", "s").stdout.strip()
    done = script(
        orderflow_bin,
        *("webhook", "deliver", str(body), "--signature", header, "--secret", "s", "--json"),
        cwd=tmp_path,
        db=db,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reason"] == "orphan: 'pm_1234' is not a payment intent id"
