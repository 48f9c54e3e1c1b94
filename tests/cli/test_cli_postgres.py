"""The `orderflow` command on a PostgreSQL DSN: the installed script as a real subprocess,
against the test server (`ORDERFLOW_TEST_PG_DSN`; those tests skip when it is unset)."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from cli_helpers import script
from pg import server_dsn

from cli.target import in_schema


def orderflow(
    binary: Path, db: str, *args: str, cwd: Path, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run the script on `db`, expecting exit `code` and, on a refusal, one error line."""
    done = script(binary, *args, cwd=cwd, env={"ORDERFLOW_DB": db})
    assert done.returncode == code, (args, done.stdout, done.stderr)
    if code:
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: "), line
    return done


def tables(dsn: str) -> list[str]:
    """The tables in the DSN's schema (its search_path's first)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() ORDER BY table_name"
        ).fetchall()
    return [str(row[0]) for row in rows]


@pytest.fixture
def demo_schemas() -> Iterator[list[str]]:
    """The schemas a demo test made (it appends them): dropped afterwards."""
    made: list[str] = []
    yield made
    import psycopg

    with psycopg.connect(server_dsn(), autocommit=True) as admin:
        for name in made:
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def test_start_settle_and_show_on_a_dsn(orderflow_bin: Path, pg_dsn: str, tmp_path: Path) -> None:
    def run(command: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        return orderflow(orderflow_bin, pg_dsn, *shlex.split(command), cwd=tmp_path, code=code)

    for command in ("order list", "ledger verify"):  # read-only: nothing created on a DSN either
        assert "holds no ledger" in run(command, code=1).stderr
    assert tables(pg_dsn) == []
    run("catalog add MUG --name Mug --price 12.50 --currency EUR --stock 5")
    run("order start --item MUG=2 --order-id o1")
    assert "fulfilled" in run("order settle o1").stdout
    shown = json.loads(run("order show o1 --json").stdout)
    assert (shown["order"]["status"], shown["order"]["paid"]) == ("fulfilled", 2500)
    assert json.loads(run("ledger verify --json").stdout)["ok"] is True
    said = run("ledger verify").stdout
    assert "ledger ok" in said and "PostgreSQL" in said and "SQLite" not in said, said


def test_demo_on_a_dsn_makes_two_new_schemas(
    orderflow_bin: Path, pg_dsn: str, tmp_path: Path, demo_schemas: list[str]
) -> None:
    done = orderflow(orderflow_bin, pg_dsn, "demo", "--json", cwd=tmp_path)
    doc = json.loads(done.stdout)
    demo_schemas += [doc["files"]["shop"], doc["files"]["moved_to"]]
    assert doc["ok"] is True, doc
    assert doc["verify"]["shop"]["ok"] and doc["verify"]["moved_to"]["ok"]
    assert (tmp_path / doc["files"]["export"]).is_file()
    assert tables(pg_dsn) == []  # the DSN's own schema: never touched
    shop = in_schema(pg_dsn, doc["files"]["shop"])  # the demo's ledger, with the CLI on it
    orders = json.loads(
        orderflow(orderflow_bin, shop, "order", "list", "--json", cwd=tmp_path).stdout
    )
    assert sorted(o["status"] for o in orders) == ["expired", "fulfilled", "moved"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_is_one_error_line(orderflow_bin: Path, tmp_path: Path) -> None:
    dsn = f"postgresql://orderflow:secret@127.0.0.1:{_free_port()}/shop"
    add = ("catalog", "add", "MUG", "--name", "M", "--price", "1", "--currency", "EUR")
    for args in (("order", "list"), add):
        done = orderflow(orderflow_bin, dsn, *args, cwd=tmp_path, code=1)
        assert "cannot connect" in done.stderr and "secret" not in done.stderr


def test_a_database_that_does_not_exist_is_one_error_line(
    orderflow_bin: Path, tmp_path: Path
) -> None:
    parts = urlsplit(server_dsn())
    dsn = urlunsplit(parts._replace(path="/no_such_database"))
    done = orderflow(orderflow_bin, dsn, "order", "list", cwd=tmp_path, code=1)
    assert '"no_such_database" does not exist' in done.stderr


def test_without_psycopg_a_dsn_is_one_error_line_naming_the_extra(tmp_path: Path) -> None:
    """As where the `postgres` extra is not installed: psycopg cannot be imported."""
    program = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from cli import main\n"
        "sys.argv = ['orderflow', '--db', 'postgresql://shop@127.0.0.1:1/shop', 'order', 'list']\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path, timeout=60
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: cannot open ledger 127.0.0.1:1/shop: PostgreSQL needs psycopg: "
        "pip install 'orderflow[postgres]'"
    ]
