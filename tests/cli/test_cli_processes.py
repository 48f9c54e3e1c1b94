"""Real processes of the installed script on one database file: state survives between them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from cli_helpers import script


@pytest.fixture
def shop(orderflow_bin, tmp_path):
    db = tmp_path / "shop.db"

    def call(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = script(orderflow_bin, *args, cwd=tmp_path, db=db)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done

    call("catalog", "add", "MUG", "--name", "Mug", "--price", "12.50", "--stock", "3")
    return call


def test_start_then_settle_in_separate_processes(shop):
    started = json.loads(shop("order", "start", "--item", "MUG=2", "--json").stdout)
    order_id = started["order"]["order_id"]
    settled = json.loads(shop("order", "settle", order_id, "--json").stdout)
    assert settled["outcome"] == "settled" and settled["order_status"] == "fulfilled"
    listed = shop("order", "list").stdout
    assert order_id in listed and "fulfilled" in listed and "25.00 EUR" in listed
    mug = json.loads(shop("catalog", "list", "--json").stdout)[0]
    assert (mug["available"], mug["reserved"], mug["sold"]) == (1, 0, 2)


def test_errors_from_a_real_process(shop):
    done = shop("order", "settle", "nope", code=1)
    assert done.stderr == "error: unknown order 'nope'\n" and done.stdout == ""
    done = shop("order", "start", "--item", "MUG=9", code=1)
    assert done.stderr.startswith("error: out of stock") and "Traceback" not in done.stderr
    assert shop("order", "start", "--item", "MUG", code=2).stderr


def test_webhook_pipeline_through_pipes(shop, orderflow_bin, tmp_path):
    order_id = json.loads(shop("order", "start", "--item", "MUG=1", "--json").stdout)["order"][
        "order_id"
    ]
    body = shop("webhook", "event", order_id).stdout
    (tmp_path / "evt.json").write_text(body)
    header = shop("webhook", "sign", "evt.json", "--secret", "s3cret").stdout.strip()
    out = shop("webhook", "deliver", "evt.json", "--signature", header, "--secret", "s3cret")
    assert out.stdout.startswith("settled:")
    assert shop(
        "webhook", "deliver", "evt.json", "--signature", header, "--secret", "s3cret"
    ).stdout.startswith("already settled:")


def test_python_dash_m_cli(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "cli", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and "orderflow" in done.stdout


def test_ledger_tail_follow_sees_another_process(shop, orderflow_bin, tmp_path):
    follower = subprocess.Popen(
        [
            str(orderflow_bin),
            "--db",
            str(tmp_path / "shop.db"),
            "ledger",
            "tail",
            "-n",
            "0",
            "--follow",
            "--interval",
            "0.05",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(15, follower.kill)  # readline must never hang the suite
    watchdog.start()
    try:
        time.sleep(0.5)
        shop("catalog", "restock", "MUG", "4")
        line = follower.stdout.readline()  # type: ignore[union-attr]
        assert line, "tail --follow printed nothing"
        assert json.loads(line)["type"] == "Restocked"
    finally:
        watchdog.cancel()
        follower.terminate()
        follower.wait(timeout=10)
        follower.stdout.close()  # type: ignore[union-attr]
        follower.stderr.close()  # type: ignore[union-attr]
