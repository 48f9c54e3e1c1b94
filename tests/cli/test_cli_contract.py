"""What an operator expects of the command: JSON errors, --version, completion, help, options."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import error_line, script
from typer.testing import CliRunner

from cli import app

ROOT = typer.main.get_command(app)
REPO = Path(__file__).resolve().parents[2]


def _leaves(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    subs = getattr(command, "commands", None)
    if subs is None:
        return [path]
    return [leaf for name, sub in subs.items() for leaf in _leaves(sub, (*path, name))]


LEAVES = _leaves(ROOT)


def test_json_errors_are_one_object_on_stderr_with_the_same_exit_code(shop_db):
    for args in (["--json", "order", "show", "nope"], ["order", "show", "nope", "--json"]):
        refused = shop_db(*args, code=1)
        assert json.loads(refused.stderr) == {
            "error": "unknown order 'nope'",
            "kind": "UnknownOrder",
        }
        assert refused.stdout == ""
    usage = shop_db("order", "start", "--json", code=2)
    assert json.loads(usage.stderr) == {"error": "Missing option '--item'.", "kind": "usage"}
    unknown = shop_db("--json", "--no-such-option", "order", "list", code=2)
    assert json.loads(unknown.stderr)["kind"] == "usage"
    bad_value = shop_db("--json", "catalog", "coupon", "X", "--percent-off", "150", code=1)
    assert "--percent-off" in json.loads(bad_value.stderr)["error"]
    # without --json the contract is unchanged: one `error:` line
    assert error_line(shop_db("order", "show", "nope", code=1)) == "error: unknown order 'nope'"


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and re.fullmatch(r"orderflow \d+\.\d+\.\d+\S*\n", result.stdout)


def test_shell_completion(orderflow_bin, tmp_path):
    shown = script(orderflow_bin, "--show-completion", "bash", cwd=tmp_path)
    assert shown.returncode == 0 and "_ORDERFLOW_COMPLETE" in shown.stdout
    words = {
        "COMP_WORDS": "orderflow fl",
        "COMP_CWORD": "1",
        "_ORDERFLOW_COMPLETE": "complete_bash",
    }
    completed = script(orderflow_bin, cwd=tmp_path, env=words)
    assert completed.stdout.split() == ["flows"]


@pytest.mark.parametrize(
    "path", [(), *sorted({leaf[:1] for leaf in LEAVES}), *LEAVES], ids=" ".join
)
def test_help_shows_no_internal_metavars(path):
    text = CliRunner().invoke(app, [*path, "--help"]).stdout
    assert not re.search(r"<(str|int|list|path|float)[^>]*>|\{[a-z_]+\}|[A-Z_]+ <", text), text


@pytest.mark.parametrize("path", LEAVES, ids=" ".join)
def test_every_command_has_an_example(path):
    text = CliRunner().invoke(app, [*path, "--help"]).stdout
    assert "Example: orderflow " in text and " ".join(path) in text.split("Example:")[1]


def test_the_order_id_help_says_what_is_accepted(shop_db):
    text = " ".join(shop_db("order", "show", "--help").stdout.split())
    assert "(ord_...)" not in text and "--order-id" in text and "any non-empty text" in text
    chosen = "a b/ü"
    shop_db("order", "start", "--item", "MUG=1", "--order-id", chosen)
    assert f"order {chosen}: awaiting payment" in shop_db("order", "show", chosen).stdout
    generated = json.loads(shop_db("order", "start", "--item", "MUG=1", "--json").stdout)
    assert re.fullmatch(r"ord_[0-9a-f]{16}", generated["order"]["order_id"])


@pytest.mark.parametrize("option", [["--db", "x.db"], ["--debug"], ["--flows", "m"]])
def test_a_global_option_after_the_command_says_where_it_goes(run, option):
    result = run("catalog", "list", *option, code=2)
    assert f"{option[0]} is an option of orderflow itself: give it before the command" in (
        result.stderr
    )
    assert f"`orderflow {option[0]} ... catalog list`" in result.stderr


def test_the_demo_says_it_ignores_the_root_db(tmp_path):
    result = CliRunner().invoke(
        app, ["--db", str(tmp_path / "mine.db"), "demo", "--db", str(tmp_path / "story.db")]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"note: the demo ignores --db {tmp_path / 'mine.db'}")
    assert not (tmp_path / "mine.db").exists()


def test_the_demo_names_every_file_it_leaves_and_git_ignores_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stdout.splitlines() if x.startswith("files left"))
    named = set(line.split(": ", 1)[1].split(", "))
    assert named == {p.name for p in tmp_path.iterdir()}  # everything it left, and only that
    assert any(name.endswith("-flows.json") for name in named)
    patterns = [p for p in (REPO / ".gitignore").read_text().splitlines() if p and p[0] != "#"]
    assert all(any(fnmatch.fnmatch(name, p) for p in patterns) for name in named), named


def test_config_set_without_an_option_is_a_usage_error(shop_db):
    result = shop_db("config", "set", code=2)
    wanted = "give at least one of --tax-rate-bp, --payment-timeout, --review-timeout"
    assert wanted in result.stderr
    assert "settings recorded" not in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--percent-off", "150"], 1, "--percent-off must be more than 0 and at most 100"),
        (["--percent-off", "0"], 1, "--percent-off must be more than 0 and at most 100"),
        ([], 2, "give one of --percent-off and --amount-off"),
        (["--percent-off", "5", "--amount-off", "1", "--currency", "EUR"], 2, "give one of"),
    ],
)
def test_coupon_errors_name_the_options_typed(shop_db, args, code, fragment):
    result = shop_db("catalog", "coupon", "X", *args, code=code)
    assert fragment in result.stderr and "_bp" not in result.stderr
    assert "amount_off" not in result.stderr


def test_an_import_conflict_names_the_product_and_both_values(shop_db, tmp_path, run_on):
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o1")
    document = tmp_path / "flows.json"
    shop_db("flows", "export", str(document))
    other = run_on(tmp_path / "other.db")
    other("catalog", "add", "MUG", "--name", "Big mug", "--price", "14.00", "--currency", "EUR")
    assert error_line(other("flows", "import", str(document), code=1)) == (
        "error: import rejected: product MUG differs here: name 'Big mug' here, 'Mug' in the "
        "document; unit price 14.00 EUR here, 12.50 EUR in the document"
    )


def test_retiring_a_document_from_another_ledger_says_so(shop_db, tmp_path, run_on):
    shop_db("order", "start", "--item", "MUG=1", "--order-id", "o1")
    document = tmp_path / "flows.json"
    shop_db("flows", "export", str(document))
    stranger = run_on(tmp_path / "stranger.db")
    stranger("catalog", "add", "MUG", "--name", "Mug", "--price", "12.50", "--currency", "EUR")
    line = error_line(stranger("flows", "retire", str(document), "--force", code=1))
    assert "it is not in this ledger: the document was exported elsewhere" in line
    assert "changed here" not in line
