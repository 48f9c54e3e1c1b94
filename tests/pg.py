"""The PostgreSQL test leg: a fresh schema per test on the server `ORDERFLOW_TEST_PG_DSN` names.

Unset: the leg skips, saying so. Set but unreachable: the test fails (a CI that meant to
test PostgreSQL must not pass by skipping it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A DSN whose schema is new and empty; the schema is dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    dsn = server_dsn()
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
