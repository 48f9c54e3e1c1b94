"""`orderflow config`: settings recorded in the ledger, so every later command uses them."""

from __future__ import annotations

from cli_helpers import error_line


def test_settings_are_recorded_and_used_by_later_commands(shop_db, as_json):
    assert as_json("config", "show")["config"] == {
        "livemode": False,
        "tax_rate_bp": 0,
        "payment_timeout_seconds": 1800,
        "review_timeout_seconds": 14 * 24 * 3600,
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


def test_bad_settings_are_usage_errors(shop_db):
    assert "--payment-timeout" in shop_db("config", "set", "--payment-timeout", "0", code=2).stderr
    assert "--tax-rate-bp" in shop_db("config", "set", "--tax-rate-bp", "-5", code=2).stderr
    assert "--review-timeout" in shop_db("config", "set", "--review-timeout", "0", code=2).stderr
