"""Bad databases and the error contract: one stderr line, exit 1; usage errors exit 2."""

from __future__ import annotations

import os
import stat

import pytest
from cli_helpers import error_line, make_run
from typer.testing import CliRunner

from cli import app
from commerce import UnknownOrder


def test_missing_database_directory(tmp_path):
    run = make_run(CliRunner(), tmp_path / "no" / "such" / "dir" / "shop.db")
    line = error_line(run("catalog", "list", code=1))
    assert "does not exist" in line and str(tmp_path / "no" / "such" / "dir") in line


def test_database_path_is_a_directory(tmp_path):
    run = make_run(CliRunner(), tmp_path)
    assert "directory" in error_line(run("order", "list", code=1))


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, not SQLite")
    assert "not a SQLite database" in error_line(
        make_run(CliRunner(), path)("order", "list", code=1)
    )


def test_read_only_database_directory(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    run = make_run(CliRunner(), folder / "shop.db")
    run("catalog", "add", "MUG", "--name", "Mug", "--price", "1.00", "--currency", "EUR")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: a 0o500 directory is still writable")
        result = run("catalog", "restock", "MUG", "1", code=1)
        assert "not writable" in error_line(result)
    finally:
        folder.chmod(stat.S_IRWXU)


def test_read_commands_work_on_a_read_only_file_and_writes_are_refused(tmp_path):
    path = tmp_path / "shop.db"
    run = make_run(CliRunner(), path)
    run("catalog", "add", "MUG", "--name", "Mug", "--price", "1.00", "--currency", "EUR")
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        assert "MUG" in run("catalog", "list").stdout
        run("order", "list")
        run("ledger", "tail")
        assert "ledger ok" in run("ledger", "verify").stdout
        assert "not writable" in error_line(run("catalog", "restock", "MUG", "1", code=1))
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)


@pytest.mark.parametrize(
    "command",
    [
        ["order", "list"],
        ["order", "show", "o1"],
        ["catalog", "list"],
        ["flows", "list"],
        ["flows", "why", "o1"],
        ["ledger", "tail"],
        ["ledger", "verify"],
        ["config", "show"],
    ],
)
def test_read_commands_never_create_a_ledger(tmp_path, command):
    path = tmp_path / "typo.db"
    line = error_line(make_run(CliRunner(), path)(*command, code=1))
    assert str(path) in line and "no such file" in line
    assert list(tmp_path.iterdir()) == []  # no ledger, no lock file, no -wal


def test_debug_re_raises(shop_db):
    result = shop_db("--debug", "order", "show", "nope", code=1)
    assert isinstance(result.exception, UnknownOrder)
    plain = shop_db("order", "show", "nope", code=1)
    assert not isinstance(plain.exception, UnknownOrder)


def test_usage_errors_exit_2(run):
    run("order", code=2)  # a group without a command prints help (exit 2, as for any usage error)
    run("order", "frobnicate", code=2)
    run("catalog", "add", "X", code=2)  # --name and --price missing
    run("ledger", "tail", "-n", "-1", code=2)
    run("--no-such-option", "order", "list", code=2)


def test_database_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "env.db"
    add = ["catalog", "add", "MUG", "--name", "Mug", "--price", "1.00", "--currency", "EUR"]
    result = CliRunner().invoke(app, add, env={"ORDERFLOW_DB": str(path)})
    assert result.exit_code == 0 and path.exists()
    result = CliRunner().invoke(app, ["catalog", "list"], env={"ORDERFLOW_DB": str(path)})
    assert result.exit_code == 0 and "MUG" in result.stdout


def test_default_database_in_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    add = ["catalog", "add", "MUG", "--name", "Mug", "--price", "1.00", "--currency", "EUR"]
    result = CliRunner().invoke(app, add, env={"ORDERFLOW_DB": None})
    assert result.exit_code == 0 and (tmp_path / "orderflow.db").exists()
