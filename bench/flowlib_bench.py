"""flowlib benchmark: in-memory steps per second, and replay steps per second.

Run: `python -m bench.flowlib_bench` (add `--quick` for a short run). Prints one figure a line.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from flowlib import Engine, MemoryStore, Registry, Request, StepContext, flow, stream_of
from flowlib.log import AnyFlowEvent
from flowlib.replay import replay


class Step(Request[int], frozen=True):
    """A serviced request: the handler answers at once, inside the step's transaction."""

    n: int


REGISTRY = Registry()


@flow("bench", registry=REGISTRY)
def bench_flow(steps: int):  # type: ignore[no-untyped-def]
    total = 0
    for n in range(steps):
        total += yield Step(n=n)
    return total


def answer(request: Step, ctx: StepContext) -> int:
    return request.n


def _best(runs: int, fn: Any) -> float:
    """The fastest of `runs` timings of `fn()`, in seconds (least disturbed by the machine)."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def run(quick: bool) -> dict[str, float]:
    """Steps per second for running flows of serviced steps, and for replaying their logs."""
    flows, steps, runs = (20, 500, 3) if quick else (100, 1000, 5)
    total = flows * steps
    store = MemoryStore()
    engine = Engine(store, {Step: answer}, registry=REGISTRY)
    counter = iter(range(10**9))

    def execute() -> None:
        for _ in range(flows):
            engine.start("bench", steps, flow_id=f"f{next(counter)}")

    run_seconds = _best(runs, execute)
    logs = [store.read(stream_of(f"f{i}"), AnyFlowEvent) for i in range(flows)]
    assert engine.result("f0") == steps * (steps - 1) // 2

    def rebuild() -> None:
        for i, events in enumerate(logs):
            replay(f"f{i}", events, REGISTRY, check_finished=True).discard()

    replay_seconds = _best(runs, rebuild)
    return {
        "run_steps_per_s": total / run_seconds,
        "replay_steps_per_s": total / replay_seconds,
        "steps": float(total),
    }


if __name__ == "__main__":
    for name, value in run("--quick" in sys.argv).items():
        print(f"{name}: {value:,.0f}")
