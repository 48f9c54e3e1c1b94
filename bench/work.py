"""The work per order step: SQL statements, WAL pages per commit and CPU time, per begin and settle.

`python -m bench.work [--trace]` prints the figures (`--trace` also lists the statements of
one begin and one settle). Statements are counted with `set_trace_callback` on the
connection the steps run on (trigger bodies not counted); WAL pages are the frames the
`-wal` file grows by (from `os.stat`: only SQLite opens the ledger's files), with the WAL
truncated before each phase and the phase small enough that no checkpoint runs inside it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from commerce import FakeProvider, PaymentIntent, Shop, parse_money, sign
from ledger import WAL_AUTOCHECKPOINT

SECRET = "whsec_bench"
WARM_UP = 20
_FRAME_HEADER, _WAL_HEADER = 24, 32


@dataclass
class Phase:
    """What one phase of `count` operations cost."""

    count: int
    statements: list[str] = field(default_factory=list)
    cpu: float = 0.0
    wal_frames: int = 0

    @property
    def commits(self) -> int:
        """The COMMIT statements the phase ran."""
        return sum(1 for sql in self.statements if sql.strip().upper() == "COMMIT")


def signed_bodies(shop: Shop, order_ids: list[str], now: int) -> list[tuple[bytes, str]]:
    """A signed `payment_intent.succeeded` webhook for each order, paying it in full."""
    bodies = []
    for order_id in order_ids:
        row = shop.order(order_id).order
        intent = PaymentIntent(
            intent_id=row.intent_id or "",
            order_id=order_id,
            amount=row.total,
            currency=row.currency,
        )
        body = FakeProvider.event_for(
            intent, "payment_intent.succeeded", event_id=f"evt_{order_id}", created=now
        )
        bodies.append((body, sign(body, SECRET, now)))
    return bodies


def _wal_size(path: Path) -> int:
    try:
        return os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return 0


@contextmanager
def measured(shop: Shop, path: Path, count: int) -> Iterator[Phase]:
    """Count the statements, CPU time and WAL frames of what runs inside the block."""
    phase = Phase(count)
    shop.ledger.checkpoint("TRUNCATE")
    page_size = int(shop.ledger.db.execute("PRAGMA page_size").fetchone()[0])
    conn = shop.ledger.db.conn
    before = _wal_size(path)

    def trace(sql: str) -> None:
        if not sql.startswith("--"):  # "-- TRIGGER name": a trigger's body, not a statement
            phase.statements.append(sql)

    conn.set_trace_callback(trace)
    started = time.process_time()
    try:
        yield phase
    finally:
        phase.cpu = time.process_time() - started
        conn.set_trace_callback(None)
    grown = _wal_size(path) - max(before, _WAL_HEADER)
    phase.wal_frames = grown // (page_size + _FRAME_HEADER)


def begin_orders(shop: Shop, order_ids: list[str]) -> None:
    """Begin one order of one MUG for each id."""
    for order_id in order_ids:
        shop.start_order([("MUG", 1)], order_id=order_id)


def settle_all(shop: Shop, bodies: list[tuple[bytes, str]]) -> None:
    """Settle each signed webhook (each must settle its order)."""
    for body, header in bodies:
        result = shop.settle_webhook(body, header, secret=SECRET)
        if result.outcome != "settled":
            raise RuntimeError(f"the bench's settle did not settle: {result}")


def stocked(shop: Shop, count: int, history: int) -> None:
    """Stock for `count` orders more, after `history` orders begun and settled."""
    shop.add_product("MUG", "Mug", parse_money("12.50", "EUR"), stock=count + history)
    earlier = [f"h-{n}" for n in range(history)]
    begin_orders(shop, earlier)
    settle_all(shop, signed_bodies(shop, earlier, int(time.time())))


def phases(path: Path, count: int, history: int = WARM_UP) -> tuple[Phase, Phase]:
    """(begin, settle) phases of `count` orders each on a new file at FULL.

    `history` orders are begun and settled first (a warm-up, and b-trees of some depth).
    """
    # Each phase must fit in the WAL without an automatic checkpoint (which would reset it).
    if count * 2 * 40 >= WAL_AUTOCHECKPOINT:
        raise ValueError(f"{count} orders may checkpoint the WAL inside a phase")
    with Shop.open(path, synchronous="FULL", provider=FakeProvider()) as shop:
        stocked(shop, count, history)
        order_ids = [f"o-{n}" for n in range(count)]
        with measured(shop, path, count) as begin:
            begin_orders(shop, order_ids)
        bodies = signed_bodies(shop, order_ids, int(time.time()))
        with measured(shop, path, count) as settle:
            settle_all(shop, bodies)
    return begin, settle


def figures(phase: Phase, name: str) -> dict[str, float]:
    """The phase's figures per operation (and WAL pages per commit)."""
    return {
        f"SQL statements per {name}": len(phase.statements) / phase.count,
        f"commits per {name}": phase.commits / phase.count,
        f"WAL pages per {name} commit": phase.wal_frames / max(phase.commits, 1),
        f"CPU ms per {name}": phase.cpu * 1000 / phase.count,
    }


def run(quick: bool) -> dict[str, float]:
    """Every figure of this module, keyed by name."""
    count, history = (20, 200) if quick else (40, 2000)
    with tempfile.TemporaryDirectory(prefix="work-bench-") as tmp:
        begin, settle = phases(Path(tmp) / "work.db", count, history)
    return figures(begin, "begin") | figures(settle, "settle")


def _print_trace(phase: Phase, name: str, show: Callable[[str], None]) -> None:
    per = len(phase.statements) // phase.count
    show(f"-- the statements of one {name} ({per}):")
    for sql in phase.statements[:per]:
        show("   " + " ".join(sql.split()))


def main() -> None:
    """Print the figures; with `--trace`, the statements of one begin and one settle too."""
    with tempfile.TemporaryDirectory(prefix="work-bench-") as tmp:
        begin, settle = phases(Path(tmp) / "work.db", 40, 2000)
    for name, value in (figures(begin, "begin") | figures(settle, "settle")).items():
        print(f"{name:<40}{value:>10.2f}")
    if "--trace" in sys.argv:
        _print_trace(begin, "begin", print)
        _print_trace(settle, "settle", print)


if __name__ == "__main__":
    main()
