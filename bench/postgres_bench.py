"""Appends/s on PostgreSQL at 1, 2, 4 and 8 writer processes, beside SQLite at FULL.

`python -m bench.postgres_bench DSN [SECONDS]`: each writer process appends one ~200-byte
event per committed transaction (`synchronous="FULL"`, the durable setting) to a stream of
its own, for SECONDS; the same on a SQLite file in a temporary directory, in the same run.
The DSN's schema (default `public`) is used as it is: point it at a scratch database.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

from bench.ledger_bench import BenchEvent
from ledger import Ledger

PROCESSES = (1, 2, 4, 8)


def _writer(target: str, name: str, seconds: float, start: float) -> int:
    """Append until `seconds` after `start` (a shared wall-clock moment); the appends made."""
    with Ledger.open(target) as ledger:
        event, count = BenchEvent(order_id=name, sku="A1", quantity=1), 0
        while time.time() < start:
            pass  # every writer begins at the same moment (no sleep: a busy start line)
        while time.time() < start + seconds:
            ledger.append(f"bench:{name}", [event])
            count += 1
    return count


def rate(target: str, processes: int, seconds: float) -> float:
    """Committed appends per second from `processes` writers on `target`."""
    Ledger.open(target).close()  # the schema exists before the writers race
    start = time.time() + 1.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        jobs = [(target, f"p{n}", seconds, start) for n in range(processes)]
        counts = pool.starmap(_writer, jobs)
    return sum(counts) / seconds


def main(argv: list[str]) -> None:
    """Print appends/s per process count, PostgreSQL then SQLite."""
    dsn, seconds = argv[0], float(argv[1]) if len(argv) > 1 else 3.0
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = str(Path(tmp) / "bench.db")
        for processes in PROCESSES:
            pg, lite = rate(dsn, processes, seconds), rate(sqlite, processes, seconds)
            print(f"{processes} processes  PostgreSQL {pg:8.0f}/s   SQLite FULL {lite:8.0f}/s")


if __name__ == "__main__":
    main(sys.argv[1:])
