"""Opening: creation, schema identity and version, foreign and read-only files."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from ledger_helpers import Deposited, file_digest, raw

from ledger import (
    SCHEMA_VERSION,
    Ledger,
    NotALedger,
    ReadOnlyLedger,
    SchemaTooNew,
)
from ledger.schema import APPLICATION_ID


def test_open_creates_a_wal_ledger_with_schema_version(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.append("s", [Deposited("a", 1)])
        assert ledger.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert ledger.db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
        assert ledger.sqlite_version == sqlite3.sqlite_version
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    conn.close()
    assert path.with_name(path.name + ".lock").exists()


def test_reopen_keeps_events_and_normal_is_explicit(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.append("s", [Deposited("a", 1)])
        head = ledger.head()
    with Ledger.open(path, synchronous="NORMAL") as ledger:
        assert ledger.db.execute("PRAGMA synchronous").fetchone() == (1,)
        assert ledger.head() == head
        assert ledger.append("s", [Deposited("a", 2)], expected_version=1) == 2
        assert ledger.verify().ok
    with pytest.raises(ValueError):
        Ledger.open(path, synchronous="OFF")  # type: ignore[arg-type]


def test_empty_file_becomes_a_ledger(path: Path) -> None:
    path.touch()
    with Ledger.open(path) as ledger:
        assert ledger.append("s", [Deposited("a", 1)]) == 1


def _other_database(path: Path, *statements: str) -> None:
    conn = raw(path)
    for statement in statements:
        conn.execute(statement)
    conn.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.write_bytes(b"this is not a database at all, just some bytes" * 40),
        lambda p: p.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000),
        lambda p: _other_database(p, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)"),
        lambda p: _other_database(p, "PRAGMA user_version = 3"),
        lambda p: _other_database(p, "PRAGMA application_id = 42"),
    ],
    ids=["text", "bad-sqlite-header", "other-tables", "other-user-version", "other-app-id"],
)
def test_foreign_file_is_refused_untouched(path: Path, make: object) -> None:
    make(path)  # type: ignore[operator]
    digest, listing = file_digest(path), sorted(os.listdir(path.parent))
    with pytest.raises(NotALedger) as caught:
        Ledger.open(path)
    assert str(path) in str(caught.value)
    assert file_digest(path) == digest
    assert sorted(os.listdir(path.parent)) == listing


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotALedger, match="directory"):
        Ledger.open(tmp_path)


def test_newer_schema_is_refused_untouched(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.append("s", [Deposited("a", 1)])
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    digest = file_digest(path)
    with pytest.raises(SchemaTooNew) as caught:
        Ledger.open(path)
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert file_digest(path) == digest


def test_read_only_file_is_refused_untouched(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.append("s", [Deposited("a", 1)])
    digest = file_digest(path)
    path.chmod(0o444)
    try:
        with pytest.raises(ReadOnlyLedger):
            Ledger.open(path)
    finally:
        path.chmod(0o644)
    assert file_digest(path) == digest


def test_read_only_directory_is_refused_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "orders.db"
    with Ledger.open(path) as ledger:
        ledger.append("s", [Deposited("a", 1)])
    digest, listing = file_digest(path), sorted(os.listdir(folder))
    folder.chmod(0o555)
    try:
        with pytest.raises(ReadOnlyLedger):
            Ledger.open(path)
        with pytest.raises(ReadOnlyLedger):
            Ledger.open(folder / "new.db")
        assert sorted(os.listdir(folder)) == listing
    finally:
        folder.chmod(0o755)
    assert file_digest(path) == digest
