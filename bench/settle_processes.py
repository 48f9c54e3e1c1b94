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
from bench.restart_worker import signed_body
from commerce import Shop

SECRET = "whsec_settle_processes"
PROCESSES = (1, 2, 4, 8)
MANY_SKUS = 64
DSN_VARIABLE = "ORDERFLOW_BENCH_PG_DSN"
_TICK = os.sysconf("SC_CLK_TCK")


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


class ServerCpu:
    """CPU seconds spent by this machine's PostgreSQL processes while the block runs.

    Sampled from /proc every 20 ms, so a backend that ends between samples loses at most
    its last 20 ms; None where no postgres process is visible (a server elsewhere).
    """

    def __init__(self) -> None:
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> ServerCpu:
        self._first = self._last = _postgres_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self._last = {**self._last, **_postgres_cpu()}

    @property
    def seconds(self) -> float | None:
        """The CPU seconds spent (None: no server process seen)."""
        if not self._last:
            return None
        return sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())


def _postgres_cpu() -> dict[str, float]:
    """pid -> user + system CPU seconds of every process named postgres."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue  # ended meanwhile
        name, rest = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :]
        if name.startswith("postgres"):
            fields = rest.split()
            found[pid] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def settle(
    target: str, processes: int, per: int, server_side: bool = False
) -> tuple[float, float, float | None]:
    """`processes` processes settling on `target`, already seeded with their orders:
    (settles/s, worker CPU ms per settle, server CPU ms per settle with `server_side`, when
    the server runs here, else None)."""
    start = time.time() + 2.0  # every process has opened its shop and made its bodies by then
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        jobs = [(target, 1 + n * per, per, start) for n in range(processes)]
        settling = pool.starmap_async(_settler, jobs)
        time.sleep(max(0.0, start - time.time()))
        with ServerCpu() as server:  # from the start line, not the processes' start-up
            results = settling.get()
    total = processes * per
    worker = sum(cpu for _, cpu in results) * 1000 / total
    spent = server.seconds if server_side else None
    return (
        total / max(s for s, _ in results),
        worker,
        None if spent is None else spent * 1000 / total,
    )


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


def _record(
    figures: dict[str, float], name: str, measured: tuple[float, float, float | None]
) -> None:
    rate, worker, server = measured
    figures[f"{name} settles/s"] = rate
    figures[f"{name} worker CPU ms per settle"] = worker
    if server is not None:
        figures[f"{name} server CPU ms per settle"] = server


def run(per: int, dsn: str | None = None) -> dict[str, float]:
    """Every figure, keyed by name."""
    dsn = dsn or os.environ.get(DSN_VARIABLE) or None
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="settle-processes-") as tmp:
        for processes in PROCESSES:
            path = Path(tmp) / f"p{processes}.db"
            seed_suspended(path, processes * per + 1)
            rate = settle(str(path), processes, per)
            _record(figures, f"SQLite {processes} processes", rate)
            if dsn is None:
                continue
            for skus, label in ((1, "1 SKU"), (MANY_SKUS, f"{MANY_SKUS} SKUs")):
                with _fresh_schema(dsn) as target:
                    seed_suspended(target, processes * per + 1, skus)
                    measured = settle(target, processes, per, server_side=True)
                _record(figures, f"PostgreSQL {processes} processes {label}", measured)
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
