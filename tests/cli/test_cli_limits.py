"""Every number the CLI takes is bounded: out of range is one `error:` line and exit 1 with
nothing written, never an `OverflowError` traceback or a flow that fails after the command
said "awaiting payment"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import Run, error_line, script

from commerce import MAX_PAYMENT_TIMEOUT, Shop

HUGE = "9" * 30  # past every bound and past SQLite's 64-bit integers
ADD = ["catalog", "add", "X", "--name", "X"]
COUPON = ["catalog", "coupon", "C"]


def head(db: Path) -> tuple[tuple[int, str], int]:
    with Shop.open(db) as shop:
        return shop.ledger.head(), shop.ledger.count()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([*ADD, "--price", "1", "--stock", HUGE], "in 0..1000000000"),
        ([*ADD, "--price", "1000000"], "a unit price is 0 to 999999.99"),
        ([*ADD, "--price", HUGE], "beyond the supported range"),
        (["catalog", "restock", "MUG", HUGE], "in 1..1000000000"),
        (["catalog", "restock", "MUG", "999999999"], "MUG would hold 1000000009 units"),
        ([*COUPON, "--amount-off", HUGE, "--currency", "EUR"], "beyond the supported"),
        ([*COUPON, "--percent-off", HUGE], "--percent-off must be more than 0 and at most 100"),
        (["order", "start", "--item", f"MUG={HUGE}"], "in 1..1000000000"),
        (["order", "start", "--item", "MUG=1000000001"], "in 1..1000000000"),
        (["config", "set", "--tax-rate-bp", HUGE], "need whole basis points in 0..10000"),
        (["config", "set", "--payment-timeout", HUGE], "must be whole seconds in 1..2592000"),
        (["config", "set", "--payment-timeout", "999999999999"], "payment_timeout_seconds 999"),
    ],
    ids=["stock", "price", "price-huge", "restock", "restock-past-max-stock", "coupon-amount",
         "coupon-percent", "quantity-huge", "quantity", "tax-rate", "timeout-huge", "timeout"],
)  # fmt: skip
def test_numbers_out_of_range_are_one_error_line(
    shop_db: Run, db: Path, args: list[str], fragment: str
) -> None:
    before = head(db)
    result = shop_db(*args, code=1)
    assert fragment in error_line(result)
    assert result.stdout == ""
    assert head(db) == before


def test_the_payment_timeout_case_end_to_end(tmp_path: Path, orderflow_bin: Path) -> None:
    """Through the real script: the setting is refused, so orders keep a timer that works,
    and cancelling one really releases its stock (it used to write nothing)."""
    db = tmp_path / "shop.db"

    def run(*args: str, code: int = 0) -> str:
        done = script(orderflow_bin, *args, cwd=tmp_path, db=db)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done.stdout if code == 0 else done.stderr

    run("catalog", "add", "MUG", "--name", "Mug", "--price", "12.50", "--stock", "10")
    refused = run("config", "set", "--payment-timeout", "999999999999", code=1)
    assert refused.startswith("error: payment_timeout_seconds 999999999999: must be whole")
    assert refused.count("\n") == 1
    run("config", "set", "--payment-timeout", str(MAX_PAYMENT_TIMEOUT))  # the longest allowed
    assert run("order", "start", "--item", "MUG=2", "--order-id", "o1").endswith(
        "awaiting payment\n"
    )
    why = json.loads(run("--json", "flows", "why", "o1"))
    assert (why["status"], why["last_error"]) == ("waiting", None), why
    assert why["next_timer"] is not None
    run("order", "cancel", "o1")
    order = json.loads(run("--json", "order", "show", "o1"))
    assert order["order"]["status"] == "cancelled"
    (mug,) = json.loads(run("--json", "catalog", "list"))
    assert (mug["available"], mug["reserved"]) == (10, 0)
    assert "ok" in run("ledger", "verify")


LONG = "9" * 5000  # past what Python's int() will even parse by default (4300 digits)


@pytest.mark.parametrize(
    "args",
    [
        [*COUPON, "--percent-off", LONG],
        [*COUPON, "--amount-off", LONG, "--currency", "EUR"],
        [*ADD, "--price", LONG],
        [*ADD, "--price", "1", "--stock", LONG],
        ["catalog", "restock", "MUG", LONG],
        ["order", "start", "--item", f"MUG={LONG}"],
        ["config", "set", "--tax-rate-bp", LONG],
        ["config", "set", "--payment-timeout", LONG],
    ],
    ids=["percent-off", "amount-off", "price", "stock", "restock", "quantity", "tax", "timeout"],
)
def test_numbers_too_long_to_parse_are_refused_without_a_traceback(
    shop_db: Run, db: Path, args: list[str]
) -> None:
    before = head(db)
    result = shop_db(*args, code=None)
    assert result.exit_code in (1, 2), (result.exit_code, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr and len(result.stderr) < 2000
    assert head(db) == before
