"""A write that waits for another process's lock says so on a terminal, naming the holder."""

from __future__ import annotations

import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cli_helpers import Run

HOLD = """
import sys
from commerce import Shop
with Shop.open(sys.argv[1]) as shop, shop.ledger.transaction():
    shop.restock("MUG", 1)
    print("holding", flush=True)
    sys.stdin.readline()
"""


def _terminal_run(argv: list[str]) -> subprocess.Popen[bytes]:
    """`argv` with stdout and stderr on a pseudo-terminal (as an operator's shell has)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, stdin=subprocess.DEVNULL)
    os.close(follower)
    proc.leader = leader  # type: ignore[attr-defined]
    return proc


def _read_until(fd: int, wanted: str, limit: float = 30.0) -> str:
    """What the terminal showed up to and including `wanted` (however slow the start-up)."""
    seen = b""
    deadline = time.monotonic() + limit
    while wanted.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # EIO: the other side closed
                break
    return seen.decode(errors="replace")


def _read_all(fd: int) -> str:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def test_a_waiting_write_names_the_holder_on_a_terminal(shop_db: Run, orderflow_bin: Path) -> None:
    db = str(shop_db.db)  # type: ignore[attr-defined]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        writer = _terminal_run([str(orderflow_bin), "--db", db, "catalog", "restock", "MUG", "5"])
        shown = _read_until(writer.leader, "waiting for")  # type: ignore[attr-defined]
        assert writer.poll() is None, "the write did not wait for the lock"
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
        holder.stdout.close()  # type: ignore[union-attr]
        holder.stdin.close()
    assert writer.wait(timeout=30) == 0
    out = shown + _read_all(writer.leader)  # type: ignore[attr-defined]
    assert f"waiting for the ledger's write lock (held by {holder.pid} " in out, out
    assert "MUG" in out  # then it went ahead


def test_no_notice_when_not_on_a_terminal(shop_db: Run, orderflow_bin: Path) -> None:
    db = str(shop_db.db)  # type: ignore[attr-defined]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    writer = subprocess.Popen(
        [str(orderflow_bin), "--db", db, "catalog", "restock", "MUG", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.5)
    with holder:
        holder.stdin.write("\n")  # type: ignore[union-attr]
        holder.stdin.flush()  # type: ignore[union-attr]
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0 and err == "" and "MUG" in out, err


def test_read_commands_return_while_another_process_writes(
    shop_db: Run, orderflow_bin: Path
) -> None:
    """`order list` and `catalog list` never queue behind a writer (ours or an outside one)."""
    db = str(shop_db.db)  # type: ignore[attr-defined]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    outsider = sqlite3.connect(db, isolation_level=None)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        for command in (["catalog", "list"], ["order", "list"], ["ledger", "tail"]):
            done = subprocess.run(
                [str(orderflow_bin), "--db", db, *command], capture_output=True, timeout=20
            )
            assert done.returncode == 0, done.stderr
        assert (
            b"MUG"
            in subprocess.run(
                [str(orderflow_bin), "--db", db, "catalog", "list"], capture_output=True, timeout=20
            ).stdout
        )
    finally:
        with holder:
            holder.stdin.write("\n")  # type: ignore[union-attr]
            holder.stdin.flush()  # type: ignore[union-attr]
    outsider.execute("BEGIN IMMEDIATE")  # a writer outside orderflow, e.g. the sqlite3 shell
    try:
        done = subprocess.run(
            [str(orderflow_bin), "--db", db, "catalog", "list"], capture_output=True, timeout=20
        )
        assert done.returncode == 0 and b"MUG" in done.stdout, done.stderr
    finally:
        outsider.execute("ROLLBACK")
        outsider.close()
