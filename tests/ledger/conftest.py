"""Fixtures for the ledger tests: a ledger on a real file in tmp_path, or on PostgreSQL.

`target` (and `ledger`, opened on it) runs a test once per backend: a file path for
SQLite, a DSN on a fresh schema for PostgreSQL (skipped when no server is configured).
Tests of SQLite specifics (files, locks, WAL, pragmas) use `path` instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import Balances

from ledger import Ledger


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "orders.db"


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, path: Path) -> str:
    """Where a contract test opens its ledger: once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return str(path)
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def ledger(target: str) -> Iterator[Ledger]:
    with Ledger.open(target, synchronous="NORMAL", projections=[Balances()]) as opened:
        yield opened
