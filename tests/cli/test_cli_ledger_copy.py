"""`orderflow ledger copy SRC DST`, run as the real script: a shop moved and verified."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from cli_helpers import error_line, script

from commerce import FakeProvider, PaymentIntent, Shop, from_major, sign
from ledger import Ledger

SECRET = "whsec_copy"
HEAD = re.compile(r"head (\d+):([0-9a-f]{64}) on both ends, both verified$")


def paid_webhook(shop: Shop, order_id: str) -> str:
    """Settle a signed `payment_intent.succeeded` for the order; the outcome."""
    row = shop.order(order_id).order
    intent = PaymentIntent(
        intent_id=row.intent_id or "", order_id=order_id, amount=row.total, currency=row.currency
    )
    now = int(shop.clock().timestamp())
    body = FakeProvider.event_for(
        intent, "payment_intent.succeeded", event_id=f"evt_{order_id}", created=now
    )
    return shop.settle_webhook(body, sign(body, SECRET, now), secret=SECRET).outcome


@pytest.fixture
def shop_file(tmp_path: Path) -> Path:
    """A shop with four orders: two paid by signed webhooks, two awaiting payment."""
    path = tmp_path / "shop.db"
    with Shop.open(path, provider=FakeProvider()) as shop:
        shop.add_product("MUG", "Mug", from_major("12.50", "EUR"), stock=10)
        for order_id in ("o1", "o2", "o3", "o4"):
            shop.start_order([("MUG", 1)], order_id=order_id)
        assert [paid_webhook(shop, order_id) for order_id in ("o1", "o2")] == ["settled"] * 2
    return path


def copy(orderflow_bin: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `orderflow ledger copy ARGS` as a subprocess."""
    return script(orderflow_bin, "ledger", "copy", *args, cwd=cwd, timeout=60)


def rows(path: Path) -> tuple[list[object], list[object], list[object]]:
    """A shop file's orders, products and parked webhooks, as the library reads them."""
    with Shop.open(path, readonly=True) as shop:
        return shop.orders(), shop.products(), shop.parked()


def test_a_shop_copied_has_the_same_rows_and_its_suspended_orders_settle_there(
    orderflow_bin: Path, shop_file: Path, tmp_path: Path
) -> None:
    moved = tmp_path / "moved.db"
    done = copy(orderflow_bin, tmp_path, str(shop_file), str(moved), "--batch-size", "5")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"source {shop_file}: chain verified, ")
    assert lines[-3:-1] == [
        "destination: chain and projections verified against a rebuild",
        "destination: committed",
    ]
    head = HEAD.search(lines[-1])
    assert head, lines[-1]
    with Ledger.open(shop_file, readonly=True) as source:
        assert source.head() == (int(head[1]), head[2])
    anchored = script(
        orderflow_bin, "ledger", "verify", "--expect-head", f"{head[1]}:{head[2]}",
        cwd=tmp_path, db=moved,
    )  # fmt: skip
    assert anchored.returncode == 0, anchored.stderr
    assert rows(moved) == rows(shop_file)
    with Shop.open(moved, provider=FakeProvider()) as shop:
        assert paid_webhook(shop, "o3") == "settled"
        assert shop.order("o3").order.status == "fulfilled"
        assert shop.ledger.verify().ok
    with Shop.open(shop_file, readonly=True) as source:
        assert source.order("o3").order.status == "awaiting_payment"


def test_json_is_the_copy_report(orderflow_bin: Path, shop_file: Path, tmp_path: Path) -> None:
    done = copy(orderflow_bin, tmp_path, str(shop_file), "moved.db", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["source_head"] == report["destination_head"]
    assert report["events"] == report["source_head"][0] == report["verified"]["events"]
    assert report["verified"]["ok"] is True


def test_a_round_trip_through_postgresql(
    orderflow_bin: Path, shop_file: Path, tmp_path: Path, pg_dsn: str
) -> None:
    """SQLite to PostgreSQL and back: the file that comes back holds the same events."""
    there = copy(orderflow_bin, tmp_path, str(shop_file), pg_dsn)
    assert there.returncode == 0, there.stderr
    back = tmp_path / "back.db"
    done = copy(orderflow_bin, tmp_path, pg_dsn, str(back))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("source postgresql://")
    with Ledger.open(shop_file, readonly=True) as source, Ledger.open(back) as copied:
        assert list(copied.read_all()) == list(source.read_all())
    assert rows(back) == rows(shop_file)


def sqlite_rows(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM events ORDER BY position").fetchall()


def test_a_destination_with_events_is_refused(
    orderflow_bin: Path, shop_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with Shop.open(other, provider=FakeProvider()) as shop:
        shop.add_product("TEE", "Tee", from_major("20.00", "EUR"), stock=1)
    before = sqlite_rows(other)
    done = copy(orderflow_bin, tmp_path, str(shop_file), str(other))
    assert done.returncode == 1
    assert "already holds 2 events" in error_line(done)
    assert sqlite_rows(other) == before


def test_a_missing_source_is_refused(orderflow_bin: Path, tmp_path: Path) -> None:
    done = copy(orderflow_bin, tmp_path, "nowhere.db", "moved.db")
    assert done.returncode == 1
    assert "no such file" in error_line(done)
    assert not (tmp_path / "moved.db").exists()


def test_a_broken_source_is_refused_with_its_position(
    orderflow_bin: Path, shop_file: Path, tmp_path: Path
) -> None:
    with sqlite3.connect(shop_file) as conn:  # behind the ledger's back
        conn.execute("DROP TRIGGER events_refuse_update")
        conn.execute("UPDATE events SET data = replace(data, '1250', '1') WHERE position = 1")
    done = copy(orderflow_bin, tmp_path, str(shop_file), "moved.db")
    assert done.returncode == 1
    assert "hash chain is broken at position 1" in error_line(done)
    assert not (tmp_path / "moved.db").exists()


def test_an_unreachable_destination_is_refused(
    orderflow_bin: Path, shop_file: Path, tmp_path: Path
) -> None:
    done = copy(orderflow_bin, tmp_path, str(shop_file), "postgresql://x@127.0.0.1:1/db")
    assert done.returncode == 1
    assert "cannot connect" in error_line(done)
