"""PostgreSQL specifics: the triggers, tampering behind them, migrations, errors, placeholders."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from ledger_helpers import Balances, Deposited, state

from ledger import (
    AppendOnlyViolation,
    ChainBroken,
    Ledger,
    MissingLedger,
    NotALedger,
    OpenError,
    StorageError,
)

psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[Ledger]:
    """A ledger of three events, all in the global chain (a loaded server may hold the
    sequencer back longer than a read waits for it: `state` compares chain heads)."""
    ledger = Ledger.open(pg_dsn, projections=[Balances()])
    ledger.append("account:a", [Deposited("a", 1), Deposited("a", 2)])
    ledger.append("account:b", [Deposited("b", 3)])
    assert ledger.sync(timeout=60)
    yield ledger
    ledger.close()  # (again, where the test closed it: a failed one leaks nothing)


def _raw(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


@pytest.mark.parametrize(
    "statement",
    ["UPDATE events SET data = '{}' WHERE position = 1", "DELETE FROM events", "TRUNCATE events"],
)
def test_update_delete_and_truncate_are_refused(pg: Ledger, statement: str) -> None:
    before = state(pg)
    with pytest.raises(AppendOnlyViolation, match="refused"):
        pg.query(statement)
    assert state(pg) == before and pg.verify().ok
    pg.close()


def test_a_row_edited_behind_the_triggers_is_flagged(pg: Ledger, pg_dsn: str) -> None:
    with _raw(pg_dsn) as raw:  # a superuser's session that fires no ordinary triggers
        raw.execute("SET session_replication_role = replica")
        raw.execute("UPDATE events SET data = replace(data, '2', '9') WHERE position = 2")
    report = pg.verify()
    assert not report.ok and report.broken is not None and report.broken.position == 2
    with pytest.raises(ChainBroken):
        pg.read("account:a", Deposited)
    with pytest.raises(ChainBroken):
        pg.rebuild()
    pg.close()


def test_a_disabled_trigger_is_reported(pg: Ledger, pg_dsn: str) -> None:
    with _raw(pg_dsn) as raw:
        raw.execute("ALTER TABLE events DISABLE TRIGGER events_refuse_truncate")
    report = pg.verify()
    assert not report.ok and report.missing_guards == ["events_refuse_truncate"]
    pg.close()


def test_migrations_are_tracked_and_applied_once(pg: Ledger, pg_dsn: str) -> None:
    names = [row[0] for row in pg.query("SELECT name FROM ledger_migrations ORDER BY name")]
    assert names == ["0001_events", "0002_verified"]
    pg.close()
    with Ledger.open(pg_dsn) as again:
        assert again.query("SELECT count(*) FROM ledger_migrations") == [(2,)]
        assert again.version("account:a") == 2


def test_a_schema_of_something_else_is_refused_untouched(pg_dsn: str) -> None:
    with _raw(pg_dsn) as raw:
        raw.execute("CREATE TABLE customers (id int)")
    with pytest.raises(NotALedger, match="customers"):
        Ledger.open(pg_dsn)
    with _raw(pg_dsn) as raw:
        tables = raw.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    assert tables == [("customers",)]


def test_a_read_only_open_creates_nothing(pg_dsn: str) -> None:
    with pytest.raises(MissingLedger):
        Ledger.open(pg_dsn, readonly=True)


def test_an_unreachable_server_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="cannot connect"):
        Ledger.open("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=5")


def test_the_password_stays_out_of_messages() -> None:
    with pytest.raises(StorageError) as caught:
        Ledger.open("postgresql://nobody:secret@127.0.0.1:1/none?connect_timeout=5")
    assert "secret" not in caught.value.path


def test_without_psycopg_opening_a_dsn_says_what_to_install(tmp_path: object) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from ledger import Ledger, OpenError\n"
        "try:\n    Ledger.open('postgresql://u:pw@localhost/db')\n"
        "except OpenError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'orderflow[postgres]'" in out.stdout and "pw" not in out.stdout
    assert issubclass(OpenError, Exception)


@pytest.mark.parametrize(
    ("portable", "pyformat"),
    [  # portable, as psycopg takes it
        ("SELECT a FROM t WHERE b = ? AND c > ?", "SELECT a FROM t WHERE b = %s AND c > %s"),
        ("SELECT '?', x::int WHERE y = :name", "SELECT '?', x::int WHERE y = %(name)s"),
        (
            "SELECT 'it''s ?' LIKE 'a%' AND \"q?\" = ?",
            "SELECT 'it''s ?' LIKE 'a%%' AND \"q?\" = %s",
        ),
    ],
)
def test_placeholders_become_psycopgs(portable: str, pyformat: str) -> None:
    from ledger.postgres import pyformat as translate

    assert translate(portable) == pyformat


def test_a_sql_ascii_database_reads_text_back_as_text() -> None:
    """On a SQL_ASCII database psycopg hands back bytes unless the client asks for UTF8."""
    from urllib.parse import urlsplit, urlunsplit

    from pg import server_alone

    name = f"t_ascii_{uuid.uuid4().hex[:12]}"
    with server_alone() as server, _raw(server) as admin:
        admin.execute(
            f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0"
            " LC_COLLATE 'C' LC_CTYPE 'C'"
        )
        try:
            dsn = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
            with Ledger.open(dsn, projections=[Balances()]) as ledger:
                ledger.append("account:zoë", [Deposited("zoë", 5)])
                assert ledger.read("account:zoë", Deposited) == [Deposited("zoë", 5)]
                assert [r.stream for r in ledger.records("account:zoë")] == ["account:zoë"]
                assert ledger.verify().ok
        finally:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
