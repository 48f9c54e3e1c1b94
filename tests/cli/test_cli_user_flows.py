"""Your own flows through the real `orderflow` script: `--flows`, $ORDERFLOW_FLOWS, entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_helpers import script

# The README's "Writing your own flow", with the timeout sending an email too, so that the
# module's HANDLERS are what services a request the CLI's `timers run` reaches.
MODULE = """
import msgspec
from flowlib import Flow, Request, StepContext, Timer, first_of, flow


class SendEmail(Request[str]):
    to: str
    subject: str


class Approval(msgspec.Struct, frozen=True):
    approved: bool
    by: str


class AwaitApproval(Request[Approval]):
    request_id: str


@flow("expense", version=1)
def expense_flow(request_id: str, amount_cents: int) -> Flow[str]:
    won = yield first_of(AwaitApproval(request_id=request_id), Timer(seconds=3 * 24 * 3600))
    if won.index == 1:
        yield SendEmail(to="finance@example.com", subject=f"{request_id}: timed out")
        return "timed out"
    yield SendEmail(to="finance@example.com", subject=f"{request_id}: {won.value.approved}")
    return "approved" if won.value.approved else "rejected"


def send_email(request: SendEmail, ctx: StepContext) -> str:
    return f"queued:{ctx.idempotency_key}"


HANDLERS = {SendEmail: send_email}
"""

SETUP = """
import sys
from commerce import Shop
from flowlib import Engine
from expense_flows import HANDLERS, Approval, AwaitApproval

with Shop.open(sys.argv[1]) as shop:
    engine = Engine(shop.ledger, HANDLERS)
    engine.start("expense", "exp-1", 1200, flow_id="exp-1")
    engine.start("expense", "exp-2", 900, flow_id="exp-2")
    engine.resume("exp-1", Approval(approved=True, by="ana"), awaiting=AwaitApproval)
"""
LATER = "2099-01-01T00:00:00Z"


@pytest.fixture
def expenses(tmp_path: Path) -> Path:
    """A shop file holding two `expense` flows: exp-1 approved, exp-2 waiting for approval."""
    (tmp_path / "expense_flows.py").write_text(MODULE)
    db = tmp_path / "expenses.db"
    subprocess.run(
        [sys.executable, "-c", SETUP, str(db)], cwd=tmp_path, check=True, capture_output=True
    )
    return db


def run(binary: Path, db: Path, *args: str, code: int = 0, **env: str) -> str:
    done = script(binary, *args, cwd=db.parent, db=db, env=env)
    assert done.returncode == code, (args, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    return done.stdout if code == 0 else done.stderr


def test_without_the_module_the_cli_says_so_and_fails(orderflow_bin, expenses):
    check = script(orderflow_bin, "flows", "check", cwd=expenses.parent, db=expenses)
    assert check.returncode == 1 and "not registered" in check.stdout
    timers = script(
        orderflow_bin, "timers", "run", "--now", LATER, cwd=expenses.parent, db=expenses
    )
    assert timers.returncode == 1
    assert timers.stderr == "error: 1 flow(s) could not be advanced: exp-2\n"
    assert "UnknownFlow" in timers.stdout


def test_flows_option_serves_list_show_why_check_and_timers(orderflow_bin, expenses):
    flows = ("--flows", "expense_flows")
    listed = run(orderflow_bin, expenses, *flows, "flows", "list")
    assert "exp-1  expense v1  completed" in listed and "exp-2  expense v1  waiting" in listed
    assert "checked 1 unfinished flow(s): ok" in run(
        orderflow_bin, expenses, *flows, "flows", "check"
    )
    why = run(orderflow_bin, expenses, *flows, "flows", "why", "exp-2")
    assert "ok: the log replays against the current code" in why
    fired = json.loads(
        run(orderflow_bin, expenses, *flows, "timers", "run", "--now", LATER, "--json")
    )["fired"]
    assert [(f["flow_id"], f["status"], f["error"]) for f in fired] == [("exp-2", "completed", "")]
    shown = run(orderflow_bin, expenses, *flows, "flows", "show", "exp-2")
    assert "SendEmail" in shown and 'ok "queued:' in shown  # the module's handler answered
    assert '"timed out"' in shown


def test_flows_from_the_environment_and_from_a_file(orderflow_bin, expenses):
    env_flows = {"ORDERFLOW_FLOWS": "expense_flows"}
    assert "ok" in run(orderflow_bin, expenses, "flows", "check", **env_flows)
    moved = expenses.parent / "elsewhere"
    moved.mkdir()
    path = str(expenses.parent / "expense_flows.py")
    done = script(orderflow_bin, "--flows", path, "flows", "check", cwd=moved, db=expenses)
    assert done.returncode == 0 and done.stdout.endswith("ok\n"), done.stderr


def test_an_installed_entry_point_is_imported(orderflow_bin, expenses, tmp_path):
    site = tmp_path / "site"
    dist = site / "expense_app-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: expense-app\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[orderflow.flows]\nexpenses = expense_flows\n")
    done = script(
        orderflow_bin,
        "flows",
        "check",
        cwd=site,
        db=expenses,
        env={"PYTHONPATH": f"{site}:{tmp_path}"},
    )
    assert done.returncode == 0 and "checked 1 unfinished flow(s): ok" in done.stdout, done.stderr


def test_a_missing_module_is_a_usage_error_and_a_broken_one_a_refusal(orderflow_bin, expenses):
    missing = script(
        orderflow_bin, "--flows", "no_such_flows", "flows", "list", cwd=expenses.parent, db=expenses
    )
    assert missing.returncode == 2 and "no module named 'no_such_flows'" in missing.stderr
    (expenses.parent / "broken_flows.py").write_text("1 / 0\n")
    broken = run(orderflow_bin, expenses, "--flows", "broken_flows", "flows", "list", code=1)
    assert broken == "error: flow module broken_flows: ZeroDivisionError: division by zero\n"
    (expenses.parent / "clash_flows.py").write_text(
        textwrap.dedent(
            """
            from commerce.requests import ReserveStock
            HANDLERS = {ReserveStock: lambda request, ctx: None}
            """
        )
    )
    clash = run(orderflow_bin, expenses, "--flows", "clash_flows", "flows", "list", code=1)
    assert clash == "error: ReserveStock is the shop's request: it has a handler\n"
