"""One engine process of the timer-sharing tests: `python timer_worker.py TARGET NOW`.

Opens the ledger, prints "ready", waits for a line on stdin, runs one round of
`fire_due_timers(NOW)` and prints a JSON object: the flows it fired and how many it
tried (`_fire` calls: what a stampede multiplies, even when the losers find nothing).
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import msgspec
from flow_helpers import FakeClock

from flowlib import Engine, Registry, Timer, flow
from ledger import Ledger

REGISTRY = Registry()


@flow("nap", registry=REGISTRY)
def nap(seconds: int):  # type: ignore[no-untyped-def]
    yield Timer(seconds=seconds)
    return seconds


class CountingEngine(Engine):
    """An engine that counts the flows it tries to fire."""

    tries = 0

    def _fire(self, flow_id: str, now: datetime) -> list[Any]:
        self.tries += 1
        return super()._fire(flow_id, now)


def main(target: str, now: str) -> None:
    with Ledger.open(target, synchronous="NORMAL") as ledger:
        engine = CountingEngine(ledger, clock=FakeClock(), registry=REGISTRY)
        ledger.flows()  # connected before the start line, so the rounds begin together
        print("ready", flush=True)
        sys.stdin.readline()
        fired = engine.fire_due_timers(datetime.fromisoformat(now))
        report = {"fired": [f.flow_id for f in fired if f.status == "completed"]}
        print(msgspec.json.encode({**report, "tries": engine.tries}).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
