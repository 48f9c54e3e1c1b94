"""Listings that grow: `--limit` and `--since` on `order list`, `flows list` and `ledger tail`."""

from __future__ import annotations

import json

import pytest
from cli_helpers import Run


@pytest.fixture
def five(shop_db: Run) -> Run:
    """Orders o1..o5, one after the other (o5 settled)."""
    for n in range(1, 6):
        shop_db("order", "start", "--item", "MUG=1", "--order-id", f"o{n}")
    shop_db("order", "settle", "o5")
    return shop_db


def ids(result: str, key: str = "order_id") -> list[str]:
    return [row[key] for row in json.loads(result)]


def test_order_list_since_and_limit(five, as_json):
    placed = {row["order_id"]: row["placed_at"] for row in as_json("order", "list")}
    since = placed["o3"]
    assert ids(five("order", "list", "--since", since, "--json").stdout) == ["o3", "o4", "o5"]
    assert ids(five("order", "list", "--limit", "2", "--json").stdout) == ["o4", "o5"]
    waiting = five("order", "list", "--status", "awaiting_payment", "--limit", "2", "--json")
    assert ids(waiting.stdout) == ["o3", "o4"]
    assert ids(five("order", "list", "--since", "2999-01-01", "--json").stdout) == []
    text = five("order", "list", "--since", since, "--limit", "1").stdout
    assert "o5" in text and "o4" not in text
    assert "--since" in five("order", "list", "--since", "yesterday", code=2).stderr


def test_flows_list_since_and_limit(five, as_json):
    started = as_json("flows", "show", "o3")["log"][0]["recorded_at"]
    listed = five("flows", "list", "--since", started, "--json").stdout
    assert ids(listed, "flow_id") == ["o3", "o4", "o5"]
    assert ids(five("flows", "list", "--limit", "2", "--json").stdout, "flow_id") == ["o4", "o5"]
    newest_waiting = five("flows", "list", "--status", "waiting", "--limit", "1", "--json")
    assert ids(newest_waiting.stdout, "flow_id") == ["o4"]
    assert five("flows", "list", "--since", "2999-01-01").stdout == "(none)\n"


def test_ledger_tail_since_and_limit(five, as_json):
    events = as_json("ledger", "tail", "-n", "1000")
    middle = events[len(events) // 2]["recorded_at"]
    since = as_json("ledger", "tail", "-n", "1000", "--since", middle)
    assert [e["position"] for e in since] == [
        e["position"] for e in events if e["recorded_at"] >= middle
    ]
    assert since[0]["recorded_at"] == middle
    limited = as_json("ledger", "tail", "--limit", "3", "--since", middle)
    assert [e["position"] for e in limited] == [e["position"] for e in events[-3:]]
    assert as_json("ledger", "tail", "--since", "2999-01-01") == []
