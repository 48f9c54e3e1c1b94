"""Bad-input corpus for the `orderflow` console script, run as a real subprocess.

Every refusal is one `error: ...` line on stderr (never a traceback) with exit code 1, or a
usage error with exit code 2, and the ledger is unchanged (chain head and event count;
for file-level cases, the file's sha256).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import SECRET, event_body, intent_of, sha256_file

from commerce import FakeProvider, Money, Shop, sign

pytest.importorskip("cli.app", reason="the orderflow CLI (cli/app.py) is not there yet")
ORDERFLOW = Path(sys.executable).with_name("orderflow")
if not ORDERFLOW.exists():
    pytest.skip(
        f"the orderflow console script is not installed at {ORDERFLOW}", allow_module_level=True
    )


def _cli(db: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ORDERFLOW_DB": str(db), "ORDERFLOW_WEBHOOK_SECRET": SECRET}
    env["ORDERFLOW_PROVIDER"] = "fake"
    return subprocess.run(
        [str(ORDERFLOW), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60
    )


def _head(db: Path) -> tuple[tuple[int, str], int]:
    with Shop.open(db) as shop:
        return shop.ledger.head(), shop.ledger.count()


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with APL in stock and order o1 awaiting payment, plus webhook bodies."""
    folder = tmp_path_factory.mktemp("cli")
    db = folder / "shop.db"
    with Shop.open(db, provider=FakeProvider()) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=5)
        shop.start_order([("APL", 2)], order_id="o1")
        body = event_body(
            intent_of(shop, "o1"), "payment_intent.succeeded", "evt_cli", int(time.time())
        )
    (folder / "body.json").write_bytes(body)
    (folder / "bad.json").write_bytes(b"not json")
    (folder / "trunc.json").write_bytes(body[:100])
    (folder / "big.json").write_bytes(b" " * (1024 * 1024 + 1))
    return db


def _signed(name: str, *, secret: str = SECRET, age: int = 0, tamper: bool = False) -> list[str]:
    """`webhook deliver` arguments for the body file `name`, signed now (minus `age` s)."""
    return ["webhook", "deliver", name, "--signature", f"@{name}:{secret}:{age}:{int(tamper)}"]


# (id, arguments, exit code, stderr fragment)
CASES: list[tuple[str, list[str], int, str]] = [
    ("order-unknown-sku", ["order", "start", "--item", "NOPE=1"], 1, "unknown product 'NOPE'"),
    ("order-negative-quantity", ["order", "start", "--item", "APL=-1"], 1, "invalid quantity -1"),
    ("order-item-without-quantity", ["order", "start", "--item", "APL"], 2, "is not SKU=QTY"),
    ("order-quantity-not-a-number", ["order", "start", "--item", "APL=abc"], 2, "is not SKU=QTY"),
    (
        "order-duplicate-sku",
        ["order", "start", "--item", "APL=1", "--item", "APL=1"],
        1,
        "duplicate SKU",
    ),
    (
        "order-unknown-coupon",
        ["order", "start", "--item", "APL=1", "--coupon", "NOPE"],
        1,
        "no such coupon",
    ),
    ("order-show-unknown", ["order", "show", "nope"], 1, "unknown order 'nope'"),
    ("order-cancel-unknown", ["order", "cancel", "nope"], 1, "unknown order 'nope'"),
    ("order-settle-unknown", ["order", "settle", "nope"], 1, "unknown order 'nope'"),
    ("json-order-show-unknown", ["--json", "order", "show", "nope"], 1, "unknown order 'nope'"),
    (
        "price-decimal-comma",
        ["catalog", "add", "X", "--name", "X", "--price", "12,50"],
        1,
        "expected digits",
    ),
    (
        "price-too-many-decimals",
        ["catalog", "add", "X", "--name", "X", "--price", "1.234"],
        1,
        "at most 2 decimals",
    ),
    (
        "price-negative",
        ["catalog", "add", "X", "--name", "X", "--price", "-1"],
        1,
        "negative amounts",
    ),
    (
        "price-unknown-currency",
        ["catalog", "add", "X", "--name", "X", "--price", "1", "--currency", "XXX"],
        1,
        "unknown currency 'XXX'",
    ),
    ("restock-unknown-sku", ["catalog", "restock", "NOPE", "1"], 1, "unknown product 'NOPE'"),
    ("restock-zero", ["catalog", "restock", "APL", "0"], 1, "invalid quantity 0"),
    (
        "webhook-garbage-signature",
        ["webhook", "deliver", "body.json", "--signature", "garbage"],
        1,
        "bad webhook signature",
    ),
    ("webhook-wrong-secret", _signed("body.json", secret="whsec_other"), 1, "matches the body"),
    ("webhook-tampered-body", _signed("body.json", tamper=True), 1, "matches the body"),
    ("webhook-expired", _signed("body.json", age=3600), 1, "s old (tolerance 300s)"),
    ("webhook-malformed-json", _signed("bad.json"), 1, "malformed event: invalid JSON"),
    ("webhook-truncated-json", _signed("trunc.json"), 1, "truncated"),
    ("webhook-over-limit", _signed("big.json"), 1, "over the 1048576-byte limit"),
    (
        "webhook-missing-file",
        ["webhook", "deliver", "nofile.json", "--signature", "t=1,v1=00"],
        2,
        "cannot read nofile.json",
    ),
    ("import-garbage", ["flows", "import", "bad.json"], 1, "import rejected"),
]


def _resolve(args: list[str], folder: Path) -> list[str]:
    """Turn a `@file:secret:age:tamper` placeholder into a real signature header."""
    out = []
    for arg in args:
        if arg.startswith("@"):
            name, secret, age, tamper = arg[1:].split(":")
            body = (folder / name).read_bytes()
            if tamper == "1":
                body = body.replace(b"EUR", b"eur", 1) if b"EUR" in body else body + b" "
            arg = sign(body, secret, int(time.time()) - int(age))
        out.append(arg)
    return out


@pytest.mark.parametrize(
    ("args", "code", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_cli_bad_input(shop_file: Path, args: list[str], code: int, fragment: str) -> None:
    folder = shop_file.parent
    before = _head(shop_file)
    result = _cli(shop_file, *_resolve(args, folder), cwd=folder)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert fragment in result.stderr
    if code == 1:
        assert result.stderr.count("\n") == 1, result.stderr
        if "--json" in args:  # a refusal under --json is one JSON object (issue 16)
            assert fragment in json.loads(result.stderr)["error"], result.stderr
        else:
            assert result.stderr.startswith("error: "), result.stderr
    assert _head(shop_file) == before


def _garbage(path: Path) -> None:
    path.write_bytes(b"garbage " * 64)


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()


def _read_only(path: Path) -> None:
    with Shop.open(path) as shop:
        shop.add_product("APL", "Apple", Money(250, "EUR"), stock=5)
        shop.ledger.checkpoint("TRUNCATE")
    for leftover in (path.with_name(path.name + s) for s in ("-wal", "-shm", ".lock")):
        leftover.unlink(missing_ok=True)
    path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


FILE_CASES = [
    ("not-sqlite", _garbage, "it is not a SQLite database"),
    ("foreign-sqlite", _foreign, "another SQLite database"),
    ("read-only", _read_only, "not writable"),
]


@pytest.mark.parametrize(
    ("make", "fragment"), [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES]
)
@pytest.mark.parametrize(
    "command", [["order", "list"], ["catalog", "restock", "APL", "1"]], ids=["read", "write"]
)
def test_cli_bad_file(tmp_path: Path, make, fragment: str, command: list[str]) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "shop.db"
    make(db)
    before = sha256_file(db)
    result = _cli(db, *command, cwd=tmp_path)
    if make is _read_only and command[0] == "order":  # reading needs no write access
        assert result.returncode == 0 and result.stdout == "(none)\n", result.stderr
        assert sha256_file(db) == before
        return
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: cannot open ledger") and fragment in result.stderr
    assert "Traceback" not in result.stderr
    assert sha256_file(db) == before


def test_cli_directory_as_database(tmp_path: Path) -> None:
    result = _cli(tmp_path, "order", "list", cwd=tmp_path)
    assert result.returncode == 1 and "it is a directory" in result.stderr
    assert os.listdir(tmp_path) == []
