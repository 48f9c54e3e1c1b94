"""A fixed, seeded workload for instruction counts: `python -m bench.instructions PHASE N PATH`.

Phases are cumulative, so the difference of two runs' instruction counts is the work of
what one adds: `open` (a new shop file, `HISTORY` orders begun and settled), `begin`
(+ N orders begun), `sign` (+ their N webhooks signed), `settle` (+ those N settled).
`bench/callgrind.sh` runs each under `valgrind --tool=callgrind` and divides: per begin
is (begin - open) / N, per settle is (settle - sign) / N. Order and event ids are fixed,
and the script runs with a fixed hash seed; only the clock's digits differ between runs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.work import begin_orders, settle_all, signed_bodies, stocked
from commerce import FakeProvider, Shop

PHASES = ("open", "begin", "sign", "settle")
HISTORY = 30


def main(phase: str, count: int, path: Path) -> None:
    """Run the workload up to and including `phase`."""
    if phase not in PHASES:
        raise SystemExit(f"phase must be one of {', '.join(PHASES)}, not {phase!r}")
    upto = PHASES.index(phase)
    with Shop.open(path, synchronous="FULL", provider=FakeProvider()) as shop:
        stocked(shop, count, HISTORY)
        order_ids = [f"o-{n}" for n in range(count)]
        if upto >= 1:
            begin_orders(shop, order_ids)
        if upto >= 2:
            bodies = signed_bodies(shop, order_ids, int(time.time()))
        if upto >= 3:
            settle_all(shop, bodies)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
