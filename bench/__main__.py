"""`python -m bench [--quick] [--json]`: every figure in one run, with its aim."""

from __future__ import annotations

import json
import platform
import sqlite3
import sys
import time
from collections.abc import Callable

from bench import (
    commerce_bench,
    flowlib_bench,
    ledger_bench,
    service_bench,
    settle_processes,
    work,
)

Figures = dict[str, float]


def _aims(f: Figures) -> list[tuple[str, str, bool]]:
    """(what, where it stands, met?) for each aim of the benchmark issue."""
    rows = []
    commits = {"begun": commerce_bench.BEGIN_COMMITS, "settled": commerce_bench.SETTLE_COMMITS}
    for path, setting, floor in (
        ("settled", "FULL", 0.20),
        ("begun", "NORMAL", 0.25),
        ("settled", "NORMAL", 0.25),
    ):
        ratio = f[f"{path}/s {setting}"] * commits[path] / f[f"ceiling next to orders {setting}"]
        rows.append(
            (
                f"{path}/s x {commits[path]} commits vs ceiling, {setting} (aim >= {floor:.0%})",
                f"{ratio:.1%}",
                ratio >= floor,
            )
        )
    for name, most in (("settle", 16), ("begin", 24)):
        statements = f[f"SQL statements per {name}"]
        rows.append(
            (f"SQL statements per {name} (aim <= {most})", f"{statements:.1f}", statements <= most)
        )
    pages = f["WAL pages per settle commit"]
    rows.append(("WAL pages per settle commit (aim <= 10)", f"{pages:.1f}", pages <= 10))
    p99 = f["settle p99 ms FULL"]
    rows.append(("settle p99 at FULL (aim < 5 ms)", f"{p99:.2f} ms", p99 < 5))
    scales = sorted(
        {int(k.rsplit("=", 1)[1]) for k in f if k.startswith("restart to first settle")}
    )
    for n in scales:
        first = f[f"restart to first settle s N={n}"]
        rows.append(
            (f"restart to first settle, N={n:,} (aim < 0.3 s)", f"{first:.3f} s", first < 0.3)
        )
        after = f[f"settled/s after restart N={n}"] / f[f"settled/s without restart N={n}"]
        rows.append(
            (
                f"settle rate after restart vs without, N={n:,} (aim >= 80%)",
                f"{after:.0%}",
                after >= 0.8,
            )
        )
    big = scales[-1]
    rss = next(v for k, v in f.items() if k.startswith(f"peak RSS MB N={big} "))
    rows.append(
        (f"peak RSS settling after restart, N={big:,} (aim < 150 MB)", f"{rss:.0f} MB", rss < 150)
    )
    for key, name in (
        ("run_steps_per_s", "engine steps/s"),
        ("replay_steps_per_s", "replay steps/s"),
    ):
        rows.append(
            (f"flowlib {name} in memory (aim >= 100,000)", f"{f[key]:,.0f}", f[key] >= 100_000)
        )
    rows.append(
        ("ledger verify events/s (aim >= 200,000)", f"{f['verify']:,.0f}", f["verify"] >= 200_000)
    )
    checks = 1 - f["settled/s with read checks NORMAL"] / f["settled/s without read checks NORMAL"]
    rows.append(("verify-on-read share of a settle (aim < 10%)", f"{checks:.1%}", checks < 0.10))
    single = f["ledger single FULL"] / f["raw ceiling FULL"]
    rows.append(
        ("ledger single appends vs ceiling, FULL (aim >= 60%)", f"{single:.0%}", single >= 0.6)
    )
    ratio, p99 = f["vs ceiling 32 clients"], f["p99 ms 32 clients"]
    rows.append(
        (
            "service settles/s vs ceiling, 32 clients, FULL (aim >= 40%)",
            f"{ratio:.1%}",
            ratio >= 0.4,
        )
    )
    rows.append(("service p99 at 32 clients (aim < 50 ms)", f"{p99:.1f} ms", p99 < 50))
    single_writer = f["SQLite 1 processes settles/s"]
    for label in ("1 SKU", f"{settle_processes.MANY_SKUS} SKUs"):
        name = f"PostgreSQL 8 processes {label}"
        if f"{name} settles/s" not in f:  # the leg runs when a server is named
            continue
        scale = f[f"{name} settles/s"] / single_writer
        rows.append(
            (
                f"PostgreSQL 8 processes ({label}) vs SQLite 1, FULL (aim >= 2x)",
                f"{scale:.2f}x",
                scale >= 2.0,
            )
        )
    one, bound = f["p50 ms 1 clients"], f["direct settle p50 ms"] + f["HTTP round trip p50 ms"]
    rows.append(
        (
            "service p50 at 1 client vs direct settle + HTTP round trip (aim <=)",
            f"{one:.2f} vs {bound:.2f} ms",
            one <= bound,
        )
    )
    return rows


def main() -> None:
    """Run every benchmark once and print the figures, then the aims."""
    quick, as_json = "--quick" in sys.argv, "--json" in sys.argv
    figures: Figures = {}
    parts: list[tuple[str, Callable[[bool], Figures]]] = [
        ("ledger", ledger_bench.run),
        ("flowlib", flowlib_bench.run),
        ("commerce", commerce_bench.run),
        ("work per step", work.run),
        ("the service over HTTP", lambda quick: service_bench.run(100 if quick else 1000)),
        ("settles from worker processes", lambda quick: settle_processes.run(50 if quick else 300)),
    ]
    started = time.perf_counter()
    for name, run in parts:
        if not as_json:
            print(f"running {name} ...", file=sys.stderr, flush=True)
        figures.update(run(quick))
    aims = _aims(figures)
    python = f"{platform.python_implementation()} {platform.python_version()}"
    machine = f"{platform.machine()}, {python}, SQLite {sqlite3.sqlite_version}"
    if as_json:
        report = {
            "machine": machine,
            "quick": quick,
            "figures": figures,
            "aims": [{"aim": a, "value": v, "met": m} for a, v, m in aims],
        }
        print(json.dumps(report, indent=2))
        return
    print(
        f"orderflow benchmark ({'quick' if quick else 'full'}) on {machine}, "
        f"{time.perf_counter() - started:.0f} s"
    )
    for name, value in figures.items():
        print(f"  {name:<60}{value:>14,.2f}")
    print("aims:")
    for aim, where, met in aims:
        print(f"  [{'x' if met else ' '}] {aim:<66}{where:>12}")


if __name__ == "__main__":
    main()
