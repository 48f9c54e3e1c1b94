"""`webhook event | sign | deliver`: the signed path a web handler takes, from the shell."""

from __future__ import annotations

import json

import pytest
from cli_helpers import error_line

from commerce import sign

SECRET = "whsec_test"


@pytest.fixture
def order(shop_db):
    shop_db("order", "start", "--item", "MUG=2", "--order-id", "o1")
    return "o1"


@pytest.fixture
def event_file(shop_db, order, tmp_path):
    body = shop_db("webhook", "event", order, "--event-id", "evt_1").stdout
    path = tmp_path / "evt.json"
    path.write_text(body)
    return path


def test_event_is_a_stripe_shaped_body(event_file):
    event = json.loads(event_file.read_text())
    assert event["type"] == "payment_intent.succeeded" and event["id"] == "evt_1"
    assert event["data"]["object"]["metadata"]["order_id"] == "o1"
    assert event["data"]["object"]["amount"] == 2500


def test_sign_prints_a_valid_header(shop_db, event_file):
    header = shop_db(
        "webhook", "sign", str(event_file), "--secret", SECRET, "--timestamp", "1700000000"
    ).stdout.strip()
    assert header == sign(event_file.read_bytes(), SECRET, 1700000000)
    doc = json.loads(
        shop_db(
            "webhook", "sign", str(event_file), "--secret", SECRET, "--timestamp", "5", "--json"
        ).stdout
    )
    assert doc["timestamp"] == 5 and doc["header"].startswith("t=5,v1=")


def test_sign_reads_stdin_and_the_secret_from_the_environment(shop_db, event_file):
    body = event_file.read_text()
    header = shop_db(
        "webhook",
        "sign",
        "-",
        "--timestamp",
        "7",
        input=body,
        env={"ORDERFLOW_WEBHOOK_SECRET": SECRET},
    ).stdout.strip()
    assert header == sign(body.encode(), SECRET, 7)


def test_deliver_twice_settles_once(shop_db, as_json, event_file):
    header = shop_db("webhook", "sign", str(event_file), "--secret", SECRET).stdout.strip()
    first = as_json(
        "webhook", "deliver", str(event_file), "--signature", header, "--secret", SECRET
    )
    assert first["outcome"] == "settled" and first["order_status"] == "fulfilled"
    again = shop_db(
        "webhook", "deliver", str(event_file), "--signature", header, "--secret", SECRET
    )
    assert again.stdout.startswith("already settled")
    from_stdin = as_json(
        "webhook",
        "deliver",
        "-",
        "--signature",
        header,
        "--secret",
        SECRET,
        input=event_file.read_bytes(),
    )
    assert from_stdin["outcome"] == "already_settled"


def test_failed_attempt_by_webhook(shop_db, as_json, order, tmp_path):
    body = shop_db("webhook", "event", order, "--kind", "failed").stdout
    path = tmp_path / "failed.json"
    path.write_text(body)
    header = shop_db("webhook", "sign", str(path), "--secret", SECRET).stdout.strip()
    result = as_json("webhook", "deliver", str(path), "--signature", header, "--secret", SECRET)
    assert result["outcome"] == "recorded" and result["order_status"] == "awaiting_payment"


def test_bad_signatures_exit_1_with_one_line(shop_db, event_file):
    good = shop_db("webhook", "sign", str(event_file), "--secret", SECRET).stdout.strip()
    cases = {
        "t=1,v1=abc": "bad webhook signature",
        "garbage": "bad webhook signature",
        good.replace("v1=", "v1=0"): "bad webhook signature",
    }
    for header, expected in cases.items():
        result = shop_db(
            "webhook", "deliver", str(event_file), "--signature", header, "--secret", SECRET, code=1
        )
        assert expected in error_line(result)
    wrong = shop_db(
        "webhook",
        "deliver",
        str(event_file),
        "--signature",
        good,
        "--secret",
        "whsec_other",
        code=1,
    )
    assert "matches" in error_line(wrong)
    old = shop_db(
        "webhook", "sign", str(event_file), "--secret", SECRET, "--timestamp", "1"
    ).stdout.strip()
    assert "tolerance" in error_line(
        shop_db(
            "webhook", "deliver", str(event_file), "--signature", old, "--secret", SECRET, code=1
        )
    )


def test_malformed_body_exits_1(shop_db, tmp_path):
    path = tmp_path / "junk.json"
    path.write_text('{"id": "evt_x"}')
    header = shop_db("webhook", "sign", str(path), "--secret", SECRET).stdout.strip()
    result = shop_db(
        "webhook", "deliver", str(path), "--signature", header, "--secret", SECRET, code=1
    )
    assert "malformed event" in error_line(result)


def test_usage_errors_exit_2(shop_db, event_file, tmp_path):
    no_secret = {"ORDERFLOW_WEBHOOK_SECRET": None}
    result = shop_db("webhook", "sign", str(event_file), code=2, env=no_secret)
    assert "ORDERFLOW_WEBHOOK_SECRET" in result.stderr
    shop_db("webhook", "deliver", str(event_file), "--secret", SECRET, code=2)  # no --signature
    missing = shop_db("webhook", "sign", str(tmp_path / "nope.json"), "--secret", SECRET, code=2)
    assert "cannot read" in missing.stderr
    shop_db("webhook", "event", "o1", "--kind", "exploded", code=2)


def test_event_for_unknown_order(shop_db):
    assert error_line(shop_db("webhook", "event", "nope", code=1)) == "error: unknown order 'nope'"
