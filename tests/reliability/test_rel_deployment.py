"""The shapes a shop deploys in: several opens in one process, other processes, threads.

Each test uses real processes (the installed `orderflow` script) on one real file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from commerce import Shop

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent / "orderflow"


def cli(db: Path, *args: str) -> str:
    """Run `orderflow --db DB ...` in its own process; its stdout (exit 0 expected)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERFLOW_")}
    done = subprocess.run(
        [str(BIN), "--db", str(db), *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Holder:
    """`holder_worker.py`: one process with the ledger open twice, driven line by line."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "holder_worker.py"), str(db)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.ask(None) == "ready"

    def ask(self, line: str | None) -> str:
        assert self.proc.stdin and self.proc.stdout
        if line is not None:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        with self.proc:
            self.ask("quit")
        assert self.proc.returncode == 0


def available(db: Path) -> int:
    with Shop.open(db) as shop:
        return shop.ledger.db.execute(
            "SELECT available FROM products WHERE sku = 'MUG'"
        ).fetchone()[0]


@pytest.mark.skipif(not BIN.exists(), reason="the orderflow script is not installed")
@pytest.mark.parametrize("order", ["holder-first", "cli-first"])
def test_a_second_open_in_one_process_loses_no_acknowledged_write(
    tmp_path: Path, order: str
) -> None:
    """The repro of issue 10: two opens in process A, restocks from two other processes."""
    db = tmp_path / "r.db"
    cli(db, "catalog", "add", "MUG", "--name", "Mug", "--price", "12.50", "--currency", "EUR")
    holder = Holder(db)
    try:
        expected = 0
        steps = [("holder", 5), ("cli", 10), ("holder", 7), ("cli", 1000), ("holder", 3)]
        if order == "cli-first":
            steps.reverse()
        for who, quantity in steps:
            if who == "holder":
                assert holder.ask(f"restock {quantity}") == "ok"
            else:
                cli(db, "catalog", "restock", "MUG", str(quantity))
            expected += quantity
            # Every process sees every acknowledged write, at every point.
            assert holder.ask("stock") == f"{expected} {expected}"
            assert available(db) == expected
            assert db.with_name("r.db-wal").exists() and db.with_name("r.db-shm").exists()
    finally:
        holder.close()
    assert available(db) == expected
    assert "ledger ok" in cli(db, "ledger", "verify")
