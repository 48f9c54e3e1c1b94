"""`flows`, `timers` and `ledger` through typer's runner."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from cli_helpers import error_line

from flowlib import REGISTRY, Registry, Timer

LATER = (datetime.now(UTC) + timedelta(hours=2)).isoformat()


@pytest.fixture
def waiting(shop_db):
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o1")
    shop_db("order", "start", "--item", "TEE=1", "--order-id", "o2")
    return shop_db


def test_flows_list_and_show(waiting, as_json):
    rows = as_json("flows", "list")
    assert {r["flow_id"]: r["status"] for r in rows} == {"o1": "waiting", "o2": "waiting"}
    assert rows[0]["awaits"] == ["AwaitPayment", "Timer"] and rows[0]["due"]
    assert as_json("flows", "list", "--status", "completed") == []
    assert "AwaitPayment | Timer" in waiting("flows", "list").stdout
    shown = as_json("flows", "show", "o1")
    assert shown["state"]["status"] == "waiting"
    assert shown["log"][0]["event"]["type"] == "FlowStarted"
    assert all(entry["recorded_at"] for entry in shown["log"])
    text = waiting("flows", "show", "o1").stdout
    assert "FirstOf(AwaitPayment | Timer)" in text and "QuoteOrder" in text


def test_flows_why_waiting_with_a_failed_attempt(waiting, as_json):
    waiting("order", "fail", "o1", "--reason", "card declined")
    why = as_json("flows", "why", "o1")
    assert why["status"] == "waiting" and why["waiting_mode"] == "await"
    assert why["waiting_for"] == ["AwaitPayment", "Timer"] and why["waiting_since"]
    assert why["next_timer"] and why["replays"] is True and why["parked"] == []
    assert "card declined" in why["last_payment_failure"]
    text = waiting("flows", "why", "o1").stdout
    for label in ("waiting for", "next timer", "inbox", "last error", "replay", "order"):
        assert label in text
    assert "replays against the current code" in text


def test_flows_why_finished_and_unknown(waiting, as_json):
    waiting("order", "settle", "o1")
    why = as_json("flows", "why", "o1")
    assert why["status"] == "completed" and why["waiting_step"] is None
    assert why["next_timer"] is None and why["order_status"] == "fulfilled"
    assert "no flow" in error_line(waiting("flows", "why", "nope", code=1))
    assert "no flow" in error_line(waiting("flows", "show", "nope", code=1))


def test_timers_run_expires_unpaid_orders(waiting, as_json):
    assert as_json("timers", "run")["fired"] == []
    fired = as_json("timers", "run", "--now", LATER)
    assert sorted(f["flow_id"] for f in fired["fired"]) == ["o1", "o2"]
    assert {o["status"] for o in as_json("order", "list")} == {"expired"}
    assert "fired 0 timer(s)" in waiting("timers", "run", "--now", LATER).stdout
    assert "ISO-8601" in waiting("timers", "run", "--now", "soon", code=2).stderr


def test_export_import_between_files(waiting, as_json, tmp_path, run_on):
    waiting("order", "settle", "o2")
    target = tmp_path / "flows.json"
    summary = as_json("flows", "export", str(target), "--status", "waiting")
    assert summary["flows"] == 1 and summary["bytes"] == target.stat().st_size
    document = waiting("flows", "export", "--status", "waiting").stdout
    assert json.loads(document)  # stdout export is the document itself
    other = run_on(tmp_path / "other.db")
    report = json.loads(other("flows", "import", str(target), "--json").stdout)
    assert report["imported"] == ["o1"]
    again = json.loads(other("flows", "import", "-", "--json", input=document).stdout)
    assert again["imported"] == [] and again["unchanged"] == ["o1"]
    settled = json.loads(other("order", "settle", "o1", "--json").stdout)
    assert settled["order_status"] == "fulfilled"
    assert "import rejected" in error_line(other("flows", "import", "-", input="{}", code=1))
    assert "cannot read" in other("flows", "import", str(tmp_path / "nope"), code=2).stderr


def test_a_move_is_export_import_retire(waiting, as_json, tmp_path, run_on):
    target = tmp_path / "flows.json"
    as_json("flows", "export", str(target), "--status", "waiting")
    other = run_on(tmp_path / "other.db")
    receipt = json.loads(other("flows", "import", str(target), "--json").stdout)["receipt"]
    assert receipt in other("flows", "import", str(target)).stdout  # printed for people too
    assert "receipt" in error_line(waiting("flows", "retire", str(target), code=1))
    dry = as_json("flows", "retire", str(target), "--receipt", receipt, "--dry-run")
    assert dry == {"retired": ["o1", "o2"], "dry_run": True}
    assert {o["status"] for o in as_json("order", "list")} == {"awaiting_payment"}
    retire = ("flows", "retire", str(target), "--receipt", receipt)
    assert as_json(*retire) == {"retired": ["o1", "o2"]}
    assert {o["status"] for o in as_json("order", "list")} == {"moved"}
    assert "retired 0 moved flow(s)" in waiting(*retire).stdout
    settled = json.loads(other("order", "settle", "o1", "--json").stdout)
    assert settled["order_status"] == "fulfilled"
    ignored = as_json("order", "settle", "o2")
    assert (ignored["outcome"], ignored["order_status"]) == ("ignored", "moved")


def test_retire_refuses_a_flow_that_changed_since_the_export(waiting, as_json, tmp_path):
    target = tmp_path / "flows.json"
    as_json("flows", "export", str(target), "--status", "waiting")
    waiting("order", "fail", "o1")
    assert "changed here since the export" in error_line(
        waiting("flows", "retire", str(target), "--force", code=1)
    )
    assert {o["status"] for o in as_json("order", "list")} == {"awaiting_payment"}


def test_flows_check_passes_on_current_code(waiting, as_json):
    report = as_json("flows", "check")
    assert report == {"ok": True, "checked": 2, "divergences": []}
    assert "checked 2 unfinished flow(s): ok" in waiting("flows", "check").stdout


def _waits_a_minute():
    yield Timer(seconds=60)
    return "done"


def _waits_two_minutes():
    yield Timer(seconds=120)
    return "done"


def test_flows_check_fails_on_divergence(run, monkeypatch):
    name = "cli-test-divergent"
    scratch = Registry()
    monkeypatch.setitem(REGISTRY._flows, name, {1: scratch.register(name, 1, _waits_a_minute)})
    from commerce import Shop

    with Shop.open(run.db) as shop:
        shop.engine.start(name, flow_id="d1")
    assert json.loads(run("flows", "check", "--json").stdout)["ok"] is True
    monkeypatch.setitem(REGISTRY._flows, name, {1: scratch.register(name, 1, _waits_two_minutes)})
    result = run("flows", "check", code=1)
    assert "DIVERGES d1 at step 0" in result.stdout
    report = json.loads(run("flows", "check", "--json", code=1).stdout)
    assert report["ok"] is False and report["divergences"][0]["flow_id"] == "d1"
    why = json.loads(run("flows", "why", "d1", "--json").stdout)
    assert why["replays"] is False and "diverged" in why["divergence"]


def test_ledger_verify_rebuild_tail(waiting, as_json):
    report = as_json("ledger", "verify")
    assert report["ok"] is True and report["sqlite_version"] and report["events"] > 10
    text = waiting("ledger", "verify").stdout
    assert text.startswith("ledger ok") and "SQLite 3." in text
    assert as_json("ledger", "rebuild")["events"] == report["events"]
    tail = as_json("ledger", "tail", "-n", "3")
    assert [e["position"] for e in tail] == [
        report["events"] - 2,
        report["events"] - 1,
        report["events"],
    ]
    assert isinstance(tail[0]["data"], dict)
    lines = waiting("ledger", "tail", "-n", "5").stdout.strip().splitlines()
    assert len(lines) == 5 and "flow:o2" in lines[-1]
    assert as_json("ledger", "tail", "-n", "0") == []
