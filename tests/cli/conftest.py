"""Fixtures for the CLI tests: a runner bound to a fresh database file, and the real script."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import Run, make_run
from stripe_standin import OPENAPI, StripeStandIn
from typer.testing import CliRunner


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """A database path that does not exist yet."""
    return tmp_path / "shop.db"


@pytest.fixture
def run(db: Path) -> Run:
    """Invoke `orderflow --db <db> ...` in-process (stdout and stderr kept apart)."""
    return make_run(CliRunner(), db)


@pytest.fixture
def run_on() -> Callable[[Path], Run]:
    """A runner for another database file."""
    return lambda path: make_run(CliRunner(), path)


@pytest.fixture
def shop_db(run: Run) -> Run:
    """`run`, on a database with MUG (12.50 EUR, 10), TEE (20.00 EUR, 2) and coupon TEN."""
    run(
        "catalog",
        "add",
        "MUG",
        "--name",
        "Mug",
        "--price",
        "12.50",
        "--currency",
        "EUR",
        "--stock",
        "10",
    )
    run(
        "catalog",
        "add",
        "TEE",
        "--name",
        "Tee",
        "--price",
        "20.00",
        "--currency",
        "EUR",
        "--stock",
        "2",
    )
    run("catalog", "coupon", "TEN", "--percent-off", "10")
    return run


@pytest.fixture
def as_json(run: Run) -> Callable[..., Any]:
    """Invoke with `--json`, expect exit 0, and parse stdout."""

    def call(*args: str, input: str | bytes | None = None) -> Any:
        result = run(*args, "--json", input=input)
        return json.loads(result.stdout)

    return call


@pytest.fixture(scope="session")
def orderflow_bin() -> Path:
    """The installed `orderflow` console script next to this interpreter."""
    path = Path(sys.executable).parent / "orderflow"
    if not path.exists():
        pytest.skip(f"the orderflow script is not installed next to {sys.executable}")
    return path


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    """The Stripe stand-in on 127.0.0.1 (skips without the recorded Stripe shapes)."""
    if not OPENAPI.is_dir():
        pytest.skip("the recorded Stripe shapes (../shared/fixtures/payments) are not here")
    server = StripeStandIn().start()
    yield server
    server.stop()
