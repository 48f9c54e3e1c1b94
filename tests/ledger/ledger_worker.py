"""A separate process for the multi-process tests: `python ledger_worker.py MODE PATH ...`.

- `spread PATH NAME COUNT`: append COUNT events, alternating a private and a shared
  stream (shared ones retried on ConcurrencyError), then print "done".
- `race PATH STREAM`: read the stream's version, print "ready", wait for a line on stdin,
  append with that expected version, print "won" or "conflict".
- `hold PATH`: open a write transaction (taking the write lock), append one event, print
  "holding", and commit only when a line arrives on stdin.
- `claim PATH OWNER NOW BATCH`: print "ready", wait for a line on stdin, then claim due
  flows (BATCH at a time, 60 s leases, none released) until none is left unclaimed, and
  print the ids claimed as a JSON list.
- `loop PATH`: start flows and append their steps forever (FULL sync), printing
  "acked POSITION STREAM VERSION" after each commit; killed with SIGKILL by the test.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import msgspec
from ledger_helpers import Deposited

from flowlib.log import FlowStarted, StepPending, stream_of
from ledger import ConcurrencyError, Ledger


def spread(path: str, name: str, count: int) -> None:
    with Ledger.open(path, synchronous="NORMAL") as ledger:
        for n in range(count):
            if n % 2:
                ledger.append(f"private:{name}", [Deposited(name, n)])
                continue
            while True:
                version = ledger.version("shared")
                try:
                    ledger.append("shared", [Deposited(name, n)], expected_version=version)
                    break
                except ConcurrencyError:
                    continue
    print("done", flush=True)


def race(path: str, stream: str) -> None:
    with Ledger.open(path) as ledger:
        version = ledger.version(stream)
        print("ready", flush=True)
        sys.stdin.readline()
        try:
            ledger.append(stream, [Deposited("race", version)], expected_version=version)
            print("won", flush=True)
        except ConcurrencyError:
            print("conflict", flush=True)


def loop(path: str) -> None:
    raw = msgspec.Raw(b"{}")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with Ledger.open(path) as ledger:
        n = 0
        while True:
            stream = stream_of(f"f{n}")
            with ledger.transaction():
                ledger.append(
                    stream,
                    [
                        FlowStarted(
                            flow_id=f"f{n}", name="order", version=1, args=raw, started_at=start
                        )
                    ],
                )
                appended = ledger.append_batch(
                    stream,
                    [
                        StepPending(
                            seq=0,
                            request=raw,
                            mode="await",
                            status="waiting",
                            awaits=["Timer"],
                            due=start + timedelta(minutes=n),
                        )
                    ],
                    expected_version=1,
                )
            print("acked", appended.first_position, stream, appended.version, flush=True)
            n += 1


def claim(path: str, owner: str, now: str, batch: int) -> None:
    with Ledger.open(path) as ledger:
        ledger.flows()  # connected before the start line, so the claims begin together
        print("ready", flush=True)
        sys.stdin.readline()
        claimed: list[str] = []
        while rows := ledger.claim_due(
            datetime.fromisoformat(now), limit=batch, lease=60, owner=owner
        ):
            claimed += [row.flow_id for row in rows]
        print(msgspec.json.encode(claimed).decode(), flush=True)


def hold(path: str) -> None:
    with Ledger.open(path) as ledger, ledger.transaction():
        ledger.append("held", [Deposited("held", 1)])
        print("holding", flush=True)
        sys.stdin.readline()


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "spread":
        spread(args[0], args[1], int(args[2]))
    elif mode == "race":
        race(args[0], args[1])
    elif mode == "claim":
        claim(args[0], args[1], args[2], int(args[3]))
    elif mode == "hold":
        hold(args[0])
    else:
        loop(args[0])
