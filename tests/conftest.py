"""Shared pytest set-up. Its presence puts `tests/` on `sys.path`, so test modules in
every package folder can `from strategies import ...` (the hypothesis strategies).

Hypothesis profiles: "ci" is the default (modest example counts, deadline=None, the
too_slow health check suppressed); set `HYPOTHESIS_PROFILE=deep` for long local runs
(many more examples and longer stateful runs), e.g.
`HYPOTHESIS_PROFILE=deep python -m pytest tests/reliability`."""

# -- hypothesis profiles ---------------------------------------------------------------
#
# "ci" (the default) keeps every property test quick enough for `.ci/run`'s 5-minute
# budget on 2 cores: modest example counts, no per-example deadline (SQLite on a slow CI
# disk is bursty), and no `too_slow` health check. "deep" is for long local runs:
#
#     HYPOTHESIS_PROFILE=deep python -m pytest tests/reliability
#
# Tests that pin `max_examples` in their own `@settings` keep that number under both.

import os as _os
from collections.abc import Iterator as _Iterator
from pathlib import Path as _Path
from typing import TYPE_CHECKING as _TYPE_CHECKING

import pytest as _pytest
from hypothesis import HealthCheck as _HealthCheck
from hypothesis import settings as _settings

_settings.register_profile(
    "ci",
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[_HealthCheck.too_slow],
)
_settings.register_profile(
    "deep",
    max_examples=500,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[_HealthCheck.too_slow, _HealthCheck.data_too_large],
)
_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if _TYPE_CHECKING:
    from backends import Targets as _Targets


# -- the PostgreSQL leg ------------------------------------------------------------------


def pytest_generate_tests(metafunc: _pytest.Metafunc) -> None:
    """Tests marked `both_backends` run once per backend (see `backends.py`)."""
    from backends import BACKENDS, MARK

    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker(MARK):
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@_pytest.fixture
def backend(request: _pytest.FixtureRequest) -> str:
    """The backend a test runs on: both for `both_backends` tests, else "sqlite"."""
    return str(getattr(request, "param", "sqlite"))


@_pytest.fixture
def targets(backend: str, tmp_path: _Path) -> _Iterator["_Targets"]:
    """New ledger targets (files, or PostgreSQL schemas) on the test's backend."""
    from backends import Targets

    made = Targets(backend, tmp_path)
    yield made
    made.close()


@_pytest.fixture
def pg_dsn() -> _Iterator[str]:
    """A DSN on a fresh schema of the test server (`ORDERFLOW_TEST_PG_DSN`; see `pg.py`)."""
    from pg import fresh_schema

    with fresh_schema() as dsn:
        yield dsn
