"""Real pipes: a reader that goes away, and `ledger tail --follow --json` as JSON Lines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from cli_helpers import script

from commerce import FakeProvider, Shop, parse_money

SECRET = "whsec_test"


def _busy_ledger(path: Path, orders: int) -> None:
    with Shop.open(path, provider=FakeProvider(), synchronous="NORMAL") as shop:
        shop.add_product("MUG", "Mug", parse_money("1.00", "EUR"), stock=orders)
        for _ in range(orders):
            shop.start_order([("MUG", 1)])


def test_a_closed_pipe_is_a_normal_end(orderflow_bin, tmp_path):
    db = tmp_path / "big.db"
    _busy_ledger(db, 300)  # thousands of events: far more than a pipe's buffer
    with subprocess.Popen(
        [str(orderflow_bin), "--db", str(db), "ledger", "tail", "-n", "5000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as tail:
        assert tail.stdout is not None and tail.stderr is not None
        first = tail.stdout.readline()  # `| head -1`
        tail.stdout.close()
        code = tail.wait(timeout=30)
        stderr = tail.stderr.read()
    assert first.strip() and code == 141 and stderr == b""


def test_follow_json_is_json_lines_for_pretty_printed_bodies(orderflow_bin, tmp_path):
    db = tmp_path / "shop.db"
    env = {"ORDERFLOW_WEBHOOK_SECRET": SECRET}

    def cli(*args: str) -> str:
        done = script(orderflow_bin, *args, cwd=tmp_path, db=db, env=env)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    cli("catalog", "add", "MUG", "--name", "Mug", "--price", "12.50", "--stock", "3")
    cli("order", "start", "--item", "MUG=1", "--order-id", "o1")
    body = tmp_path / "evt.json"
    body.write_text(json.dumps(json.loads(cli("webhook", "event", "o1")), indent=2))
    assert body.read_text().count("\n") > 10  # stored as received: many lines
    cli("webhook", "deliver", str(body), "--signature", cli("webhook", "sign", str(body)).strip())
    expected = json.loads(cli("ledger", "tail", "-n", "1000", "--json"))
    argv = [str(orderflow_bin), "--db", str(db), "ledger", "tail", "-n", "1000", "-f", "--json"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as follow:
        assert follow.stdout is not None
        lines = [follow.stdout.readline() for _ in expected]
        follow.terminate()
    assert [json.loads(line) for line in lines] == expected
    received = [e for e in expected if isinstance(e["data"].get("body"), dict)]
    assert received and received[0]["data"]["body"]["id"].startswith("evt_")
