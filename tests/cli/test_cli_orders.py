"""`catalog` and `order` through typer's runner: text, --json, exit codes."""

from __future__ import annotations

import json

from cli_helpers import error_line


def test_catalog_add_list_restock(shop_db, as_json):
    products = as_json("catalog", "list")
    assert [(p["sku"], p["unit_price"], p["currency"], p["available"]) for p in products] == [
        ("MUG", 1250, "EUR", 10),
        ("TEE", 2000, "EUR", 2),
    ]
    row = as_json("catalog", "restock", "TEE", "3")
    assert row["available"] == 5
    text = shop_db("catalog", "list").stdout
    assert "12.50 EUR" in text and "SKU" in text.splitlines()[0]


def test_catalog_add_json_and_text(run, as_json):
    added = as_json(
        "catalog",
        "add",
        "JPX",
        "--name",
        "Yen thing",
        "--price",
        "500",
        "--currency",
        "JPY",
        "--stock",
        "1",
    )
    assert added["unit_price"] == 500 and added["currency"] == "JPY"
    out = run("catalog", "add", "CAP", "--name", "Cap", "--price", "9.99").stdout
    assert "9.99 EUR" in out


def test_bad_money_strings_are_one_line_errors(run):
    for price in ("12.5.0", "-3", "12.345", "abc"):
        result = run("catalog", "add", "X", "--name", "X", "--price", price, code=1)
        assert "invalid EUR amount" in error_line(result)
    result = run("catalog", "add", "X", "--name", "X", "--price", "1", "--currency", "EURO", code=1)
    assert "unknown currency" in error_line(result)


def test_duplicate_product_and_unknown_restock(shop_db):
    assert "MUG" in error_line(
        shop_db("catalog", "add", "MUG", "--name", "M", "--price", "1", code=1)
    )
    assert error_line(shop_db("catalog", "restock", "NOPE", "1", code=1)) == (
        "error: unknown product 'NOPE'"
    )
    shop_db("catalog", "restock", "MUG", "many", code=2)


def test_order_start_prints_id_quote_intent_and_status(shop_db):
    out = shop_db(
        "order",
        "start",
        "--item",
        "MUG=2",
        "--item",
        "TEE=1",
        "--coupon",
        "TEN",
        "--order-id",
        "o1",
    ).stdout
    assert out.splitlines()[0] == "order o1"
    assert "45.00 EUR" in out and "-4.50 EUR" in out and "40.50 EUR" in out
    assert "payment intent pi_" in out
    assert out.strip().endswith("awaiting payment")


def test_order_start_json(shop_db, as_json):
    view = as_json("order", "start", "--item", "MUG=2")
    assert view["order"]["status"] == "awaiting_payment"
    assert view["order"]["total"] == 2500 and view["quote"]["currency"] == "EUR"
    assert view["order"]["intent_id"].startswith("pi_")
    assert view["timeline"][0]["event"] == "OrderPlaced"


def test_order_start_refusals(shop_db):
    assert error_line(shop_db("order", "start", "--item", "NOPE=1", code=1)) == (
        "error: unknown product 'NOPE'"
    )
    assert "out of stock" in error_line(shop_db("order", "start", "--item", "TEE=5", code=1))
    assert "quantity" in error_line(shop_db("order", "start", "--item", "MUG=0", code=1))
    assert "coupon" in error_line(
        shop_db("order", "start", "--item", "MUG=1", "--coupon", "X", code=1)
    )
    for bad in ("MUG", "MUG=x", "=2"):
        result = shop_db("order", "start", "--item", bad, code=2)
        assert "SKU=QTY" in result.stderr and "Traceback" not in result.stderr
    shop_db("order", "start", code=2)  # --item is required


def test_settle_show_list(shop_db, as_json):
    shop_db("order", "start", "--item", "MUG=2", "--order-id", "o1")
    result = as_json("order", "settle", "o1")
    assert result["outcome"] == "settled" and result["order_status"] == "fulfilled"
    again = as_json("order", "settle", "o1")  # the same direct event, whenever it is repeated
    assert again["outcome"] == "already_settled"
    assert again["order_status"] == "fulfilled"
    view = as_json("order", "show", "o1")
    assert view["order"]["paid"] == 2500
    assert "OrderFulfilled" in [e["event"] for e in view["timeline"]]
    text = shop_db("order", "show", "o1").stdout
    assert "order o1: fulfilled" in text and "timeline:" in text
    assert [o["order_id"] for o in as_json("order", "list", "--status", "fulfilled")] == ["o1"]
    assert as_json("order", "list", "--status", "expired") == []
    assert "o1" in shop_db("order", "list").stdout


def test_settle_amount_in_the_orders_currency(shop_db, as_json):
    shop_db("order", "start", "--item", "MUG=2", "--order-id", "o1")
    result = as_json("order", "settle", "o1", "--amount", "10.00", "--event-id", "pay_1")
    assert result["order_status"] == "needs_review" and result["event_id"] == "pay_1"
    assert as_json("order", "show", "o1")["order"]["paid"] == 1000
    assert "invalid EUR amount" in error_line(
        shop_db("order", "settle", "o1", "--amount", "12.5.0", code=1)
    )


def test_fail_then_cancel(shop_db, as_json):
    shop_db("order", "start", "--item", "TEE=2", "--order-id", "o1")
    failed = as_json("order", "fail", "o1", "--reason", "card declined")
    assert failed["outcome"] == "recorded" and failed["order_status"] == "awaiting_payment"
    cancelled = as_json("order", "cancel", "o1")
    assert cancelled["order"]["status"] == "cancelled"
    tee = next(p for p in as_json("catalog", "list") if p["sku"] == "TEE")
    assert (tee["available"], tee["reserved"]) == (2, 0)
    again = shop_db("order", "cancel", "o1")  # exit 0, as a repeated settle
    assert again.stdout.strip() == "order o1 is already cancelled"


def test_unknown_order_everywhere(shop_db):
    for command in ("settle", "fail", "cancel", "show"):
        assert error_line(shop_db("order", command, "nope", code=1)) == (
            "error: unknown order 'nope'"
        )


def test_root_json_flag_applies_to_commands(shop_db):
    result = shop_db("catalog", "list", code=0)
    assert not result.stdout.startswith("[")
    rows = json.loads(shop_db("--json", "catalog", "list").stdout)  # root --json
    assert len(rows) == 2
