"""Settles/s through `orderflow serve` over real HTTP: `python -m bench.service_bench [PER]`.

For 1, 8, 32 and 64 clients (each on its own keep-alive connection), PER orders are paid
through the server at synchronous=FULL (concurrent deliveries share commits: group
commit); the raw one-row-per-commit ceiling is measured before each level in the same
run, and a direct library settle on the same file after the server stops. Besides rates
and latencies it prints the server process's CPU time per delivery at each level, and the
direct settle's, which shows what bounds the rate on a machine of few cores: CPU, not
commits. Prints one JSON object.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.commerce_bench import seed_suspended
from bench.ledger_bench import rate, raw_writer
from bench.proc_stat import cpu_seconds
from bench.restart_worker import signed_body
from commerce import Shop

SECRET = "whsec_service_bench"
LEVELS = (1, 8, 32, 64)
BIN = Path(sys.executable).parent / "orderflow"


def _serve(path: Path, log: Path) -> tuple[subprocess.Popen[str], int]:
    environ = {**os.environ, "STRIPE_WEBHOOK_SECRET": SECRET, "ORDERFLOW_PROVIDER": "fake"}
    with log.open("wb") as err:
        server = subprocess.Popen(
            [str(BIN), "serve", "--db", str(path), "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=err,
            env=environ,
            text=True,
        )
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("listening on "):
            return server, int(line.rsplit(":", 1)[1])
    raise SystemExit(f"serve did not start: {log.read_text()}")


def _clients(port: int, first: int, count: int, clients: int) -> tuple[float, list[float]]:
    """Pay orders first..first+count from `clients` threads; (seconds, latencies in ms)."""
    bodies = [signed_body(i, SECRET) for i in range(first, first + count)]
    shares = [bodies[n::clients] for n in range(clients)]
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def client(share: list[tuple[bytes, str]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        start.wait()
        for body, header in share:
            began = time.perf_counter()
            conn.request("POST", "/webhooks/stripe", body, {"Stripe-Signature": header})
            response = conn.getresponse()
            answer = json.loads(response.read())
            mine.append((time.perf_counter() - began) * 1000)
            if answer.get("outcome") != "settled":
                raise SystemExit(f"not settled: {answer}")
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began, latencies


def _round_trip(port: int, count: int = 300) -> float:
    """p50 ms of a request the server answers without any work (a 404) on one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count):
        began = time.perf_counter()
        conn.request("GET", "/no-such-page")
        conn.getresponse().read()
        times.append((time.perf_counter() - began) * 1000)
    conn.close()
    return statistics.median(times)


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


def _direct(path: Path, first: int, count: int) -> tuple[float, float]:
    """p50 ms and CPU ms per settle of a direct library settle on the same file (no HTTP)."""
    times = []
    with Shop.open(path) as shop:
        cpu = time.process_time()
        for index in range(first, first + count):
            body, header = signed_body(index, SECRET)
            began = time.perf_counter()
            shop.settle_webhook(body, header, secret=SECRET)
            times.append((time.perf_counter() - began) * 1000)
        cpu = time.process_time() - cpu
    return statistics.median(times), cpu * 1000 / count


def run(per: int) -> dict[str, float]:
    """Every figure, keyed by name."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="service-bench-") as tmp:
        directory = Path(tmp)
        path = directory / "served.db"
        seed_suspended(path, per * (len(LEVELS) + 1) + 1)
        write_raw, raw = raw_writer(directory / "raw.db", "FULL")
        server, port = _serve(path, directory / "serve.log")
        try:
            figures["HTTP round trip p50 ms"] = _round_trip(port)
            for level, clients in enumerate(LEVELS):
                ceiling = rate(2000, write_raw)
                cpu = cpu_seconds(server.pid)
                seconds, latencies = _clients(port, 1 + level * per, per, clients)
                cpu = cpu_seconds(server.pid) - cpu
                figures[f"server CPU ms per delivery {clients} clients"] = cpu * 1000 / per
                settled = per / seconds
                figures[f"settled/s {clients} clients"] = settled
                figures[f"vs ceiling {clients} clients"] = settled / ceiling
                figures[f"p50 ms {clients} clients"] = _p(latencies, 50)
                figures[f"p99 ms {clients} clients"] = _p(latencies, 99)
                figures[f"ceiling commits/s before {clients} clients"] = ceiling
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
            raw.close()
        direct, direct_cpu = _direct(path, 1 + len(LEVELS) * per, per)
        figures["direct settle p50 ms"] = direct
        figures["direct settle CPU ms"] = direct_cpu
    return figures


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=2))
