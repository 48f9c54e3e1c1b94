"""Every command and group has help text (sqlite-utils' test_docs idea)."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from cli import app


def _walk(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            found.extend(_walk(sub, (*path, name)))
    return found


ROOT = typer.main.get_command(app)
COMMANDS = _walk(ROOT)


def test_the_command_tree():
    names = {" ".join(path) for path in COMMANDS}
    for expected in (
        "catalog add",
        "catalog restock",
        "catalog list",
        "order start",
        "order settle",
        "order fail",
        "order cancel",
        "order show",
        "order list",
        "webhook deliver",
        "webhook sign",
        "webhook event",
        "timers run",
        "flows list",
        "flows show",
        "flows export",
        "flows import",
        "flows why",
        "flows check",
        "ledger tail",
        "ledger verify",
        "ledger rebuild",
        "demo",
    ):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "orderflow")
def test_every_command_has_help(path):
    command: Any = ROOT
    for name in path:
        assert hasattr(command, "commands")
        command = command.commands[name]
    assert (command.help or "").strip(), f"{' '.join(path)} has no help"
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.stdout


@pytest.mark.parametrize(
    "path", [p for p in COMMANDS if p and p[0] != "demo"], ids=lambda p: " ".join(p)
)
def test_every_leaf_command_has_json(path):
    command: Any = ROOT
    for name in path:
        command = command.commands[name]
    if hasattr(command, "commands"):
        return
    assert any("--json" in p.opts for p in command.params), f"{' '.join(path)} lacks --json"
