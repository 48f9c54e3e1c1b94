"""`orderflow config`: settings recorded in the ledger, so every later command uses them."""

from __future__ import annotations

from cli_helpers import error_line


def test_settings_are_recorded_and_used_by_later_commands(shop_db, as_json):
    assert as_json("config", "show")["config"] == {
        "livemode": False,
        "tax_rate_bp": 0,
        "payment_timeout_seconds": 1800,
        "review_timeout_seconds": 14 * 24 * 3600,
        "provider": None,
    }
    recorded = as_json("config", "set", "--tax-rate-bp", "2000", "--payment-timeout", "600")
    assert recorded["changed"] is True and recorded["config"]["tax_rate_bp"] == 2000
    assert as_json("config", "set", "--tax-rate-bp", "2000")["changed"] is False
    assert as_json("config", "show")["config"]["payment_timeout_seconds"] == 600  # kept
    assert (
        as_json("config", "set", "--review-timeout", "60")["config"]["review_timeout_seconds"] == 60
    )
    view = as_json("order", "start", "--item", "MUG=2", "--order-id", "o1")
    assert (view["quote"]["subtotal"], view["quote"]["tax"]) == (2500, 500)
    text = shop_db("config", "show").stdout
    assert "20% (2000 bp, exclusive)" in text and "600 s" in text and "test" in text


def test_live_mode_refuses_test_mode_webhooks(shop_db, as_json, tmp_path):
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o1")
    body = tmp_path / "evt.json"
    body.write_text(shop_db("webhook", "event", "o1", "--event-id", "evt_1").stdout)
    header = shop_db("webhook", "sign", str(body), "--secret", "s").stdout.strip()
    deliver = ("webhook", "deliver", str(body), "--signature", header, "--secret", "s")
    as_json("config", "set", "--live")
    assert "live" in error_line(shop_db(*deliver, code=1))
    as_json("config", "set", "--test")
    assert as_json(*deliver)["outcome"] == "settled"


def test_settings_out_of_bounds_are_refused_with_one_line(shop_db, as_json):
    cases = {
        ("--payment-timeout", "0"): "payment_timeout_seconds 0: must be whole seconds in 1..",
        ("--payment-timeout", "2592001"): "in 1..2592000",
        ("--payment-timeout", "999999999999"): "payment_timeout_seconds 999999999999",
        ("--review-timeout", "0"): "review_timeout_seconds 0: must be whole seconds in 1..",
        ("--review-timeout", "99999999999"): "review_timeout_seconds 99999999999",
        ("--tax-rate-bp", "-5"): "invalid tax rate -5: need whole basis points in 0..10000",
        ("--tax-rate-bp", "10001"): "invalid tax rate 10001",
        ("--tax-rate-bp", "9" * 30): "need whole basis points in 0..10000",
    }
    for args, fragment in cases.items():
        assert fragment in error_line(shop_db("config", "set", *args, code=1))
    assert as_json("config", "show")["config"]["payment_timeout_seconds"] == 1800  # unchanged
    assert shop_db("config", "set", "--tax-rate-bp", "abc", code=2).exit_code == 2  # not a number
