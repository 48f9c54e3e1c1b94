"""The PostgreSQL test leg: a fresh schema per test on the server `ORDERFLOW_TEST_PG_DSN` names.

Unset: the leg skips, saying so. Set but unreachable: the test fails (a CI that meant to
test PostgreSQL must not pass by skipping it).

The sequencer's line is the oldest transaction open on the whole server, not the schema's:
a test that holds one open on purpose (`fresh_schema(alone=True)`) would stall every other
test's chain, so it runs while no other test of any xdist worker has a schema (`_turn`).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

ENV = "ORDERFLOW_TEST_PG_DSN"


def server_dsn() -> str:
    """The test server's DSN, or skip the test when none is configured."""
    dsn = os.environ.get(ENV, "")
    if not dsn:
        pytest.skip(f"{ENV} is not set: the PostgreSQL leg is skipped (see README, Tests)")
    return dsn


def in_schema(dsn: str, schema: str) -> str:
    """`dsn` with its connections' search_path set to `schema` (and named after it)."""
    joiner = "&" if "?" in dsn else "?"
    return f"{dsn}{joiner}options=-csearch_path%3D{schema}&application_name={schema}"


_shared = 0  # schemas of this process's test holding the shared turn (a test may make several)


@contextmanager
def _turn(dsn: str, alone: bool) -> Iterator[None]:
    """Held while this test uses the server: shared, or `alone` (no other test at all).

    A reader-writer lock over two files every worker of the run sees; a test waiting to
    be alone holds the gate, so tests arriving after it wait for it and it cannot starve.
    A test's second schema joins its first turn (queueing at the gate behind a test that
    waits for the first to end would never end).
    """
    global _shared
    if _shared and not alone:
        _shared += 1
        try:
            yield
        finally:
            _shared -= 1
        return
    name = hashlib.sha256(dsn.encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir()) / f"orderflow-test-pg-{name}"
    with open(f"{base}.gate", "a") as gate, open(f"{base}.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        _shared += not alone
        try:
            yield  # (closing the files releases both locks)
        finally:
            _shared -= not alone


@contextmanager
def server_alone() -> Iterator[str]:
    """The server's DSN, while no other test uses it: for a test whose statements hold the
    line back for long (CREATE DATABASE copies a whole template in one transaction)."""
    dsn = server_dsn()
    with _turn(dsn, alone=True):
        yield dsn


@contextmanager
def fresh_schema(*, alone: bool = False) -> Iterator[str]:
    """A DSN whose schema is new and empty; the schema is dropped afterwards.

    `alone`: for a test that keeps a transaction open to hold the sequencer back (see the
    module docstring).
    """
    psycopg = pytest.importorskip("psycopg")
    dsn = server_dsn()
    with _turn(dsn, alone):
        yield from _schema(psycopg, dsn)


def _schema(psycopg: Any, dsn: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        pytest.fail(f"{ENV} is set but the server is unreachable: {exc}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield in_schema(dsn, schema)
        finally:
            # Other sessions of the test may still be open (a worker killed by the test):
            # end them first, so the DROP never waits on their locks.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND application_name = %s",
                (schema,),
            )
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
