"""`orderflow ledger verify/rebuild` and the commands around them on a changed ledger file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cli_helpers import Run, error_line


def _tamper(db: Path, statement: str) -> None:
    """Change the file behind the ledger's back, guards dropped and put back."""
    conn = sqlite3.connect(db, isolation_level=None)
    guards = [row[0] for row in conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger'")]
    conn.execute("DROP TRIGGER events_refuse_update")
    conn.execute("DROP TRIGGER events_refuse_delete")
    conn.execute(statement)
    for sql in guards:
        conn.execute(sql)
    conn.close()


MUG_AT_ONE_CENT = """UPDATE events SET data = replace(data, '"unit_price":1250', '"unit_price":1')
WHERE stream = 'sku:MUG' AND version = 1"""


def test_rebuild_of_a_tampered_price_is_refused_and_orders_keep_the_real_price(
    shop_db: Run,
) -> None:
    _tamper(shop_db.db, MUG_AT_ONE_CENT)  # type: ignore[attr-defined]
    line = error_line(shop_db("ledger", "rebuild", code=1))
    assert "hash chain is broken at position 1" in line
    view = json.loads(shop_db("order", "start", "--item", "MUG=2", "--json").stdout)
    assert view["order"]["total"] == 2500
    assert "NOT OK" in shop_db("ledger", "verify", code=1).stdout


def test_a_tampered_tip_refuses_new_orders_but_can_be_inspected(shop_db: Run) -> None:
    _tamper(
        shop_db.db,  # type: ignore[attr-defined]
        "UPDATE events SET data = replace(data, '1000', '9000') "
        "WHERE position = (SELECT max(position) FROM events)",
    )
    line = error_line(shop_db("order", "start", "--item", "MUG=1", code=1))
    assert "hash chain is broken" in line
    assert "MUG" in shop_db("catalog", "list").stdout
    shop_db("ledger", "tail")
    report = json.loads(shop_db("ledger", "verify", "--json", code=1).stdout)
    assert report["ok"] is False and report["broken"]["position"] == report["head"][0]


def test_verify_since_last_and_expect_head(shop_db: Run) -> None:
    first = shop_db("ledger", "verify").stdout
    assert "last full verification: never" in first
    head = first.split("head ", 1)[1].split(",", 1)[0]
    position = int(head.split(":")[0])
    again = shop_db("ledger", "verify", "--since-last", "--expect-head", head).stdout
    assert f"0 events after {position}" in again and "ago, up to position" in again
    shop_db("catalog", "restock", "MUG", "1")
    scrub = json.loads(shop_db("ledger", "verify", "--since-last", "--json").stdout)
    assert scrub["ok"] and scrub["since"] == position and scrub["events"] == 1
    wrong = f"{position}:{'0' * 64}"
    out = shop_db("ledger", "verify", "--expect-head", wrong, code=1).stdout
    assert f"expected head {position} not in the chain (a different hash)" in out
    ahead = f"{position + 50}:{head.split(':')[1]}"
    assert "no event there" in shop_db("ledger", "verify", "--expect-head", ahead, code=1).stdout


def test_a_malformed_anchor_is_a_usage_error(shop_db: Run) -> None:
    result = shop_db("ledger", "verify", "--expect-head", "12", code=2)
    assert "POSITION:HASH" in result.stderr
