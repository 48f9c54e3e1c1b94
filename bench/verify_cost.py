"""What the service's start-up check costs: `python -m bench.verify_cost [ORDERS]`.

Seeds a file of ORDERS suspended orders (default 100,000; about 12 events each), then
prints one JSON object: the seconds of a first scrub (chain only, from the start, what
`--skip-verify` leaves to the background) and of a full `verify()` (chain, positions,
guards and every projection against a rebuild: what `orderflow serve` does before it
takes traffic).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.commerce_bench import seed_suspended
from commerce import Shop


def measure(orders: int) -> dict[str, float]:
    """The figures for a fresh file of `orders` suspended orders."""
    with tempfile.TemporaryDirectory(prefix="verify-cost-") as tmp:
        path = Path(tmp) / "verify.db"
        seed_suspended(path, orders)
        with Shop.open(path) as shop:
            events = shop.ledger.count()
            started = time.perf_counter()
            scrubbed = shop.ledger.scrub()
            scrub = time.perf_counter() - started
            started = time.perf_counter()
            verified = shop.ledger.verify()
            full = time.perf_counter() - started
    if not (scrubbed.ok and verified.ok):
        raise SystemExit("the seeded ledger did not verify")
    return {"orders": orders, "events": events, "first scrub s": scrub, "verify s": full}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
