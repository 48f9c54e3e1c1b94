"""Ledger throughput against the raw SQLite ceiling on this machine, in one run.

`python -m bench.ledger_bench [--quick]` prints events/s and the ratio to the ceiling: one
~200-byte row per committed transaction on a plain table with the ledger's own pragmas
(WAL, the same `synchronous`), through a plain `sqlite3` execute.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import msgspec

from ledger import WAL_AUTOCHECKPOINT, Ledger


class BenchEvent(msgspec.Struct, frozen=True, tag=True):
    """A ~200-byte event body."""

    order_id: str
    sku: str
    quantity: int
    note: str = "x" * 120


Setting = Literal["FULL", "NORMAL"]
SETTINGS: tuple[Setting, ...] = ("FULL", "NORMAL")
BATCH = 100


ROUNDS = 3
Writer = Callable[[int], None]


def rate(count: int, run: Callable[[int], None]) -> float:
    started = time.perf_counter()
    run(count)
    return count / (time.perf_counter() - started)


def raw_writer(path: Path, synchronous: Setting) -> tuple[Writer, sqlite3.Connection]:
    """A writer committing one ~200-byte row per transaction with plain sqlite3."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT}")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, stream TEXT, data TEXT)")
    body = msgspec.json.encode(BenchEvent("o-1", "sku-1", 1)).decode()

    def run(count: int) -> None:
        for index in range(count):
            conn.execute("INSERT INTO rows (stream, data) VALUES (?, ?)", (f"s{index % 50}", body))

    return run, conn


def ledger_writer(ledger: Ledger, batch: int) -> Writer:
    """A writer appending `batch` events per transaction (1 = one append per commit)."""

    def run(count: int) -> None:
        for index in range(0, count, batch):
            events = [BenchEvent(f"o-{index + n}", "sku-1", 1) for n in range(batch)]
            ledger.append(f"order:{index % 50}", events)

    return run


def appends(directory: Path, synchronous: Setting, single: int, batched: int) -> dict[str, float]:
    """Best of `ROUNDS` interleaved runs of the raw ceiling, single and batched appends.

    Interleaving keeps the ratios honest on a machine whose disk speed drifts.
    """
    raw, conn = raw_writer(directory / f"raw-{synchronous}.db", synchronous)
    figures = dict.fromkeys(("raw ceiling", "ledger single", f"ledger batched x{BATCH}"), 0.0)
    with Ledger.open(directory / f"ledger-{synchronous}.db", synchronous=synchronous) as ledger:
        runs = [
            (raw, single),
            (ledger_writer(ledger, 1), single),
            (ledger_writer(ledger, BATCH), batched),
        ]
        for _ in range(ROUNDS):
            for name, (writer, count) in zip(figures, runs, strict=True):
                figures[name] = max(figures[name], rate(count, writer))
    conn.close()
    return {f"{name} {synchronous}": rate for name, rate in figures.items()}


def verify_and_rebuild(directory: Path, count: int) -> tuple[float, float]:
    """Events/s for `verify()` and `rebuild()` over a ledger of `count` events."""
    with Ledger.open(directory / "verify.db", synchronous="NORMAL") as ledger:
        for index in range(0, count, 1000):
            ledger.append(f"order:{index}", [BenchEvent(f"o{n}", "s", n) for n in range(1000)])
        started = time.perf_counter()
        report = ledger.verify()
        verify_rate = report.events / (time.perf_counter() - started)
        started = time.perf_counter()
        applied = ledger.rebuild()
        return verify_rate, applied / (time.perf_counter() - started)


def run(quick: bool) -> dict[str, float]:
    """Every figure, keyed by name (events or rows per second)."""
    single, batched, walked = (300, 5_000, 50_000) if quick else (1_000, 30_000, 300_000)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        directory = Path(tmp)
        for setting in SETTINGS:
            scale = 1 if setting == "FULL" else 10
            figures |= appends(directory, setting, single * scale, batched)
        figures["verify"], figures["rebuild"] = verify_and_rebuild(directory, walked)
    return figures


def main() -> None:
    """Print the figures with their ratio to the raw ceiling of the same setting."""
    figures = run(quick="--quick" in sys.argv)
    print(f"SQLite {sqlite3.sqlite_version}")
    print(f"{'measure':<28}{'events/s':>14}{'vs ceiling':>12}")
    for name, rate in figures.items():
        setting = next((s for s in SETTINGS if name.endswith(s)), None)
        ratio = "" if setting is None else f"{rate / figures[f'raw ceiling {setting}']:.0%}"
        print(f"{name:<28}{rate:>14,.0f}{ratio:>12}")


if __name__ == "__main__":
    main()
