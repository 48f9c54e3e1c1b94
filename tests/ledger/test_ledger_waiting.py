"""Readers never wait for writers; a writer that waits says so, and gives up with a clear error."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger_helpers import Balances, Deposited, raw

from ledger import WAIT_NOTICE, Ledger, LockTimeout, MissingLedger, ReadOnlyLedger

HERE = Path(__file__).parent


@pytest.fixture
def holder(path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process inside a write transaction on `path` until the test ends."""
    with Ledger.open(path, projections=[Balances()]) as ledger:
        ledger.append("account:a", [Deposited("a", 5)])
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ledger_worker.py"), "hold", str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    yield proc
    with proc:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.flush()


def test_reads_and_opens_do_not_wait_for_a_writer(
    path: Path, holder: subprocess.Popen[str]
) -> None:
    started = time.monotonic()
    for readonly in (True, False):
        with Ledger.open(path, readonly=readonly, projections=[Balances()]) as ledger:
            assert ledger.read("account:a", Deposited) == [Deposited("a", 5)]
            assert ledger.version("held") == 0  # the holder's append is not committed
            assert ledger.verify().ok
    assert time.monotonic() - started < WAIT_NOTICE  # generous: it is milliseconds


def test_a_waiting_writer_is_told_who_holds_the_lock_then_gives_up(
    path: Path, holder: subprocess.Popen[str]
) -> None:
    heard: list[str] = []
    with Ledger.open(path, busy_timeout=WAIT_NOTICE + 0.5) as ledger:
        ledger.on_wait = heard.append
        started = time.monotonic()
        with pytest.raises(LockTimeout) as caught:
            ledger.append("account:b", [Deposited("b", 1)])
        waited = time.monotonic() - started
    assert WAIT_NOTICE + 0.5 <= waited < WAIT_NOTICE + 5
    assert len(heard) == 1 and str(holder.pid) in heard[0] and "ledger_worker.py" in heard[0]
    assert str(holder.pid) in str(caught.value) and "gave up after" in str(caught.value)


def test_a_writer_outside_orderflow_is_waited_for_and_named(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.append("account:a", [Deposited("a", 5)])
    outsider = raw(path)
    outsider.execute("BEGIN IMMEDIATE")
    heard: list[str] = []
    try:
        with Ledger.open(path, busy_timeout=WAIT_NOTICE + 0.5) as ledger:
            ledger.on_wait = heard.append
            with pytest.raises(LockTimeout, match="outside orderflow"):
                ledger.append("account:b", [Deposited("b", 1)])
            assert ledger.version("account:b") == 0
    finally:
        outsider.execute("ROLLBACK")
        outsider.close()
    assert heard == ["a connection outside orderflow"]


def test_a_read_only_open_creates_nothing_and_refuses_writes(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    with pytest.raises(MissingLedger, match="no such file"):
        Ledger.open(missing, readonly=True)
    with pytest.raises(MissingLedger, match="does not exist"):
        Ledger.open(tmp_path / "nope" / "x.db", readonly=True)
    assert list(tmp_path.iterdir()) == []
    path = tmp_path / "shop.db"
    with Ledger.open(path) as ledger:
        ledger.append("account:a", [Deposited("a", 5)])
    (tmp_path / "shop.db.lock").unlink()
    with Ledger.open(path, readonly=True) as ledger:
        with pytest.raises(ReadOnlyLedger, match="opened read-only"):
            ledger.append("account:a", [Deposited("a", 6)])
        assert ledger.count() == 1
    assert not (tmp_path / "shop.db.lock").exists()
