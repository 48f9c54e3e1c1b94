"""Webhook settles/s from 1, 2, 4 and 8 worker processes on one ledger, SQLite and PostgreSQL.

`python -m bench.settle_processes [PER] [DSN]`: for each process count, a fresh ledger (a
new SQLite file; a new schema on the PostgreSQL server DSN names) is seeded with PER
suspended orders per process, and each process settles its own share of their signed
webhooks through `Shop.settle_webhook` at synchronous=FULL, all starting at one moment.
The PostgreSQL leg runs when a DSN is given (or `ORDERFLOW_BENCH_PG_DSN` is set). Prints
one JSON object; `python -m bench` includes it, with the aim of issue 15: PostgreSQL at 8
processes at least twice SQLite's single-process settles/s.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.commerce_bench import seed_suspended
from bench.restart_worker import signed_body
from commerce import Shop

SECRET = "whsec_settle_processes"
PROCESSES = (1, 2, 4, 8)
DSN_VARIABLE = "ORDERFLOW_BENCH_PG_DSN"


def _settler(target: str, first: int, count: int, start: float) -> float:
    """Settle orders first..first+count from `start` (a shared moment); the seconds it took."""
    bodies = [signed_body(index, SECRET) for index in range(first, first + count)]
    with Shop.open(target) as shop:
        while time.time() < start:
            pass  # every process begins at the same moment (a busy start line, no sleep)
        for body, header in bodies:
            result = shop.settle_webhook(body, header, secret=SECRET)
            if result.outcome != "settled":
                raise SystemExit(f"not settled: {result}")
        return time.time() - start


def settles_per_second(target: str, processes: int, per: int) -> float:
    """Settles/s of `processes` processes on `target`, already seeded with their orders."""
    start = time.time() + 2.0  # every process has opened its shop and made its bodies by then
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        jobs = [(target, 1 + n * per, per, start) for n in range(processes)]
        seconds = pool.starmap(_settler, jobs)
    return processes * per / max(seconds)


@contextmanager
def _fresh_schema(dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a new, empty schema, dropped afterwards."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            joiner = "&" if "?" in dsn else "?"
            yield f"{dsn}{joiner}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def run(per: int, dsn: str | None = None) -> dict[str, float]:
    """Every figure, keyed by name."""
    dsn = dsn or os.environ.get(DSN_VARIABLE) or None
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="settle-processes-") as tmp:
        for processes in PROCESSES:
            path = Path(tmp) / f"p{processes}.db"
            seed_suspended(path, processes * per + 1)
            rate = settles_per_second(str(path), processes, per)
            figures[f"SQLite settles/s {processes} processes"] = rate
            if dsn is None:
                continue
            with _fresh_schema(dsn) as target:
                seed_suspended(target, processes * per + 1)
                rate = settles_per_second(target, processes, per)
                figures[f"PostgreSQL settles/s {processes} processes"] = rate
    return figures


if __name__ == "__main__":
    per = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(json.dumps(run(per, sys.argv[2] if len(sys.argv) > 2 else None), indent=2))
