"""The order paths against the raw SQLite ceiling, and restart at scale, in one run.

- begun/s: create + quote + reserve + payment intent, the order left suspended (2 commits:
  one before the provider call, one after it, so the call never holds the write lock);
- settled/s: verify + decode + dedupe + resume + fulfil (1 commit);
- restart: N suspended orders in the file; a new process opens it and settles one order
  (time to first settle), then settles more (rate after restart, every flow rebuilt from
  its log), and reports its peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

import ledger.verify as ledger_verify  # to price the read checks (switched off for one figure)
from bench.ledger_bench import ROUNDS, SETTINGS, Setting, rate, raw_writer
from bench.restart_worker import chunks
from bench.work import SECRET, signed_bodies
from commerce import FakeProvider, Shop, parse_money
from flowlib import AnyFlowEvent
from ledger import Ledger

BEGIN_COMMITS, SETTLE_COMMITS = 2, 1
_AnyCommerce: Any = None


def order_paths(directory: Path, synchronous: Setting, count: int) -> dict[str, float]:
    """begun/s, settled/s and settle latency on one file, interleaved with the raw ceiling.

    Each of `ROUNDS` rounds measures the raw ceiling, then begins `count` orders, then
    settles them; the best of each is kept, so a ratio compares figures taken side by side
    on a shared machine whose disk speed drifts.
    """
    raw, conn = raw_writer(directory / f"raw-orders-{synchronous}.db", synchronous)
    best = {"ceiling": 0.0, "begun": 0.0, "settled": 0.0}
    latencies: list[float] = []
    with Shop.open(
        directory / f"orders-{synchronous}.db", provider=FakeProvider(), synchronous=synchronous
    ) as shop:
        shop.add_product("MUG", "Mug", parse_money("12.50", "EUR"), stock=count * ROUNDS)
        for _ in range(ROUNDS):
            best["ceiling"] = max(best["ceiling"], rate(count * 2, raw))
            started = time.perf_counter()
            order_ids = [shop.start_order([("MUG", 1)]).order.order_id for _ in range(count)]
            best["begun"] = max(best["begun"], count / (time.perf_counter() - started))
            bodies = signed_bodies(shop, order_ids, int(time.time()))
            started = time.perf_counter()
            for body, header in bodies:
                t0 = time.perf_counter()
                shop.settle_webhook(body, header, secret=SECRET)
                latencies.append(time.perf_counter() - t0)
            best["settled"] = max(best["settled"], count / (time.perf_counter() - started))
    conn.close()
    latencies.sort()
    return {
        f"ceiling next to orders {synchronous}": best["ceiling"],
        f"begun/s {synchronous}": best["begun"],
        f"settled/s {synchronous}": best["settled"],
        f"settle p50 ms {synchronous}": latencies[len(latencies) // 2] * 1000,
        f"settle p99 ms {synchronous}": latencies[int(len(latencies) * 0.99)] * 1000,
    }


def read_checks(directory: Path, count: int) -> dict[str, float]:
    """Settles/s with every read event checked against its hash link, and with that off.

    The check is switched off only here, to price it: rounds alternate on one file, and
    the best of each is kept. The ratio is what verify-on-read costs a settle.
    """
    best = {"on": 0.0, "off": 0.0}
    checked = ledger_verify.check_link
    with Shop.open(
        directory / "read-checks.db", provider=FakeProvider(), synchronous="NORMAL"
    ) as shop:
        shop.add_product("MUG", "Mug", parse_money("12.50", "EUR"), stock=count * ROUNDS * 2)
        for _ in range(ROUNDS):
            for mode in ("on", "off"):
                order_ids = [shop.start_order([("MUG", 1)]).order.order_id for _ in range(count)]
                bodies = signed_bodies(shop, order_ids, int(time.time()))
                ledger_verify.check_link = checked if mode == "on" else _unchecked
                try:
                    started = time.perf_counter()
                    for body, header in bodies:
                        shop.settle_webhook(body, header, secret=SECRET)
                    best[mode] = max(best[mode], count / (time.perf_counter() - started))
                finally:
                    ledger_verify.check_link = checked
    return {
        "settled/s with read checks NORMAL": best["on"],
        "settled/s without read checks NORMAL": best["off"],
    }


def _unchecked(previous: str | None, row: Any) -> None:
    return None


def seed_suspended(path: str | Path, count: int, skus: int = 1) -> None:
    """Fill `path` with `count` orders awaiting payment, fast: one real order is the template.

    The template's streams are copied with fresh ids and appended in large transactions
    (the events, hashes and projections are real; only the flow code is not re-run).
    Every order buys one "MUG", or with `skus` > 1 one of "MUG000".. in turn (settles
    then rarely wait for one another on a SKU's stock row).
    """
    from commerce.events import AnyCommerceEvent

    with Shop.open(path, provider=FakeProvider(), synchronous="NORMAL") as shop:
        price = parse_money("12.50", "EUR")
        shop.add_product("MUG", "Mug", price, stock=count)
        names = [f"MUG{n:03d}" for n in range(skus)] if skus > 1 else ["MUG"]
        for name in names[1:] if skus == 1 else names:
            shop.add_product(name, "Mug", price, stock=count // skus + 1)
        template = shop.start_order([("MUG", 1)], order_id="o0000000").order
        ledger: Ledger = shop.ledger
        raw = {
            stream: [msgspec.json.encode(e) for e in ledger.read(stream, kind)]
            for stream, kind in (
                (f"order:{template.order_id}", AnyCommerceEvent),
                (f"flow:{template.order_id}", AnyFlowEvent),
            )
        }
        kinds = {"order": AnyCommerceEvent, "flow": AnyFlowEvent}
        intent = template.intent_id or ""
        for chunk in range(1, count, 2000):
            with ledger.transaction():
                for index in range(chunk, min(chunk + 2000, count)):
                    order_id = f"o{index:07d}"
                    new_intent = f"pi_{index:024d}"
                    sku = f'"sku":"{names[index % len(names)]}"'.encode()
                    for stream, events in raw.items():
                        prefix = stream.split(":")[0]
                        decoded = [
                            msgspec.json.decode(
                                e.replace(b"o0000000", order_id.encode())
                                .replace(intent.encode(), new_intent.encode())
                                .replace(b'"sku":"MUG"', sku),
                                type=kinds[prefix],
                            )
                            for e in events
                        ]
                        ledger.append(f"{prefix}:{order_id}", decoded, expected_version=0)
        if ledger.dialect == "sqlite":  # start the measured part with an empty WAL
            ledger.checkpoint("TRUNCATE")


def restart(directory: Path, suspended: int, sample: int) -> dict[str, float]:
    """A file of `suspended` waiting orders: settle rate in the seeding process, then in a new one.

    The process that seeded the file settles the last `sample` orders (no restart); a new
    process (`bench.restart_worker`) opens the file and settles all the others, every flow
    rebuilt from its log. Both settle on the same file, so the ratio isolates the restart.
    """
    path = directory / f"restart-{suspended}.db"
    seed_suspended(path, suspended + 1)
    settles = suspended - sample
    with Shop.open(path, provider=FakeProvider()) as shop:
        busy = 0.0
        for chunk in chunks(settles + 1, sample, SECRET):
            started = time.perf_counter()
            for body, header in chunk:
                shop.settle_webhook(body, header, secret=SECRET)
            busy += time.perf_counter() - started
        warm = sample / busy
    out = subprocess.run(
        [sys.executable, "-m", "bench.restart_worker", str(path), str(settles - 1), SECRET],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    figures = json.loads(out.stdout)
    return {
        f"restart to first settle s N={suspended}": figures["first"],
        f"settled/s without restart N={suspended}": warm,
        f"settled/s after restart N={suspended}": figures["rate"],
        f"peak RSS MB N={suspended} ({settles} settled)": figures["rss_mb"],
    }


def run(quick: bool) -> dict[str, float]:
    """Every figure, keyed by name."""
    count = 300 if quick else 2000
    scales = (1_000, 10_000) if quick else (10_000, 100_000)
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="commerce-bench-") as tmp:
        directory = Path(tmp)
        for setting in SETTINGS:
            figures.update(order_paths(directory, setting, count))
        figures.update(read_checks(directory, count))
        for suspended in scales:
            figures.update(restart(directory, suspended, sample=min(2000, suspended // 10)))
    return figures


if __name__ == "__main__":
    for name, value in run(quick="--quick" in sys.argv).items():
        print(f"{name:<48}{value:>14,.3f}")
