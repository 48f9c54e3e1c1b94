"""Webhook settles/s from 1, 2, 4 and 8 worker processes on one ledger, SQLite and PostgreSQL.

`python -m bench.settle_processes [PER] [DSN]`: for each process count, a fresh ledger (a
new SQLite file; a new schema on the PostgreSQL server DSN names) is seeded with PER
suspended orders per process, and each process settles its own share of their signed
webhooks through `Shop.settle_webhook` at synchronous=FULL, all starting at one moment.
The PostgreSQL leg runs when a DSN is given (or `ORDERFLOW_BENCH_PG_DSN` is set), twice:
every order on one SKU (each settle moves that SKU's stock row, so settles queue on its
row lock), and on 64 SKUs. Beside the rates: the CPU milliseconds a settle costs, in the
worker processes and (when the server runs on this machine) in the server's, and what
that allows on this machine's cores. Prints one JSON object; `python -m bench` includes
it, with the aim of issue 15: PostgreSQL at 8 processes at least twice SQLite's
single-process settles/s.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.commerce_bench import seed_suspended
from bench.proc_stat import cpu_by_pid
from bench.restart_worker import signed_body
from commerce import Shop
from ledger import is_dsn

SECRET = "whsec_settle_processes"
PROCESSES = (1, 2, 4, 8)
MANY_SKUS = 64
DSN_VARIABLE = "ORDERFLOW_BENCH_PG_DSN"


def _settler(target: str, first: int, count: int, start: float) -> tuple[float, float]:
    """Settle orders first..first+count from `start` (a shared moment): (seconds it took,
    CPU seconds this process spent settling, its sequencer thread included)."""
    bodies = [signed_body(index, SECRET) for index in range(first, first + count)]
    with Shop.open(target) as shop:
        time.sleep(max(0.0, start - time.time()))
        cpu = time.process_time()
        for body, header in bodies:
            result = shop.settle_webhook(body, header, secret=SECRET)
            if result.outcome != "settled":
                raise SystemExit(f"not settled: {result}")
        return time.time() - start, time.process_time() - cpu


class ServerWatch:
    """What this machine's PostgreSQL does while the block runs, sampled every 20 ms.

    `cpu_seconds`: CPU time of its processes, from /proc (a backend that ends between two
    samples loses at most its last 20 ms; None where no postgres process is visible, a
    server elsewhere). `lock_share`: of the samples of backends inside a transaction, the
    share waiting for a lock (another transaction's row or advisory lock).
    """

    def __init__(self, dsn: str) -> None:
        import psycopg

        self._conn = psycopg.connect(dsn, autocommit=True)
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._waits = [0, 0]  # samples waiting for a lock, samples inside a transaction
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ServerWatch:
        self._first = self._last = cpu_by_pid("postgres")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._conn.close()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._last = {**self._last, **cpu_by_pid("postgres")}
            for locked, busy in self._conn.execute(_IN_TRANSACTION):
                self._waits[0] += locked
                self._waits[1] += busy

    @property
    def cpu_seconds(self) -> float | None:
        """The CPU seconds spent (None: no server process seen)."""
        if not self._last:
            return None
        return sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())

    @property
    def lock_share(self) -> float:
        """The share of in-transaction samples waiting for a lock."""
        return self._waits[0] / max(1, self._waits[1])


_IN_TRANSACTION = (
    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), count(*) FROM pg_stat_activity"
    " WHERE datname = current_database() AND backend_type = 'client backend'"
    " AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
)


def settle(target: str, processes: int, per: int) -> dict[str, float]:
    """`processes` processes settling on `target`, already seeded with their orders: the
    figures (settles/s, worker CPU ms per settle; on PostgreSQL its server's CPU ms per
    settle when it runs here, and the share of transaction time spent waiting for locks)."""
    start = time.time() + 2.0  # every process has opened its shop and made its bodies by then
    context = multiprocessing.get_context("spawn")
    watch = ServerWatch(target) if is_dsn(target) else contextlib.nullcontext()
    with context.Pool(processes) as pool:
        jobs = [(target, 1 + n * per, per, start) for n in range(processes)]
        settling = pool.starmap_async(_settler, jobs)
        time.sleep(max(0.0, start - time.time()))
        with watch:  # from the start line, not the processes' start-up
            results = settling.get()
    total = processes * per
    figures = {
        "settles/s": total / max(seconds for seconds, _ in results),
        "worker CPU ms per settle": sum(cpu for _, cpu in results) * 1000 / total,
    }
    if isinstance(watch, ServerWatch):
        figures["lock wait share"] = watch.lock_share
        if (spent := watch.cpu_seconds) is not None:
            figures["server CPU ms per settle"] = spent * 1000 / total
    return figures


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
            measured = settle(str(path), processes, per)
            figures.update({f"SQLite {processes} processes {k}": v for k, v in measured.items()})
            if dsn is None:
                continue
            for skus, label in ((1, "1 SKU"), (MANY_SKUS, f"{MANY_SKUS} SKUs")):
                with _fresh_schema(dsn) as target:
                    seed_suspended(target, processes * per + 1, skus)
                    measured = settle(target, processes, per)
                name = f"PostgreSQL {processes} processes {label}"
                figures.update({f"{name} {k}": v for k, v in measured.items()})
    if dsn is not None:
        figures["cores"] = float(os.cpu_count() or 1)
        for label in ("1 SKU", f"{MANY_SKUS} SKUs"):
            name = f"PostgreSQL 8 processes {label}"
            server = figures.get(f"{name} server CPU ms per settle")
            if server is not None:  # what the cores allow when a settle costs that much CPU
                cost = figures[f"{name} worker CPU ms per settle"] + server
                figures[f"{name} CPU-bound ceiling settles/s"] = figures["cores"] * 1000 / cost
    return figures


if __name__ == "__main__":
    per = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    print(json.dumps(run(per, sys.argv[2] if len(sys.argv) > 2 else None), indent=2))
