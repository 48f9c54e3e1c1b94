"""The engine's cache of live instances: never observable, except in the work it saves.

Cached and uncached engines must write identical ledgers, whatever rolls back; an instance
is used again only while its stream is exactly where it left it and its code is registered.
"""

from __future__ import annotations

import gc
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from flow_helpers import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import HANDLERS, REGISTRY, Ask, flows_with_effects

from flowlib import (
    FINISHED,
    AnyFlowEvent,
    Engine,
    MemoryStore,
    Registry,
    Request,
    flow,
    stream_of,
)
from flowlib.cache import InstanceCache
from ledger import Ledger

FLOW_ID = "g"


class Rollback(Exception):
    """Raised after a step, inside an outer transaction, to roll the step back."""


def _log(ledger: Ledger, flow_id: str = FLOW_ID) -> bytes:
    return msgspec.json.encode(ledger.read(stream_of(flow_id), AnyFlowEvent))


def _state(ledger: Ledger) -> tuple[bytes, bytes, bytes]:
    """The flow's log, the handlers' own writes and the flow index: all of what was written."""
    side = msgspec.json.encode([r.data for r in ledger.records("side")])
    return _log(ledger), side, msgspec.json.encode(ledger.flows())


class Driver:
    """Drives the generic flow of `test_properties` to its end on a real ledger file.

    Before each operation, `rollbacks` says whether to run it once inside an outer
    transaction that then rolls back (the operation is then done again, for real).
    """

    def __init__(self, path: Path, steps: list[list[Any]], cache_size: int) -> None:
        self.ledger = Ledger.open(path, synchronous="NORMAL")
        self.clock = FakeClock()
        self.engine = Engine(
            self.ledger, HANDLERS, clock=self.clock, registry=REGISTRY, cache_size=cache_size
        )
        self.steps = steps
        self.specs = {spec[1]: spec for spec in steps}

    def run(self, rollbacks: Iterator[bool]) -> tuple[bytes, bytes, bytes]:
        self.do(lambda e: e.start("generic", self.steps, flow_id=FLOW_ID), rollbacks)
        for _ in range(10 * len(self.steps) + 10):
            state = self.engine.status(FLOW_ID)
            if state.status in FINISHED:
                return _state(self.ledger)
            self.act(state, rollbacks)
        raise AssertionError("the flow did not finish")

    def do(self, operation: Any, rollbacks: Iterator[bool]) -> None:
        if next(rollbacks, False):
            with pytest.raises(Rollback), self.ledger.transaction():
                operation(self.engine)
                raise Rollback
        operation(self.engine)

    def act(self, state: Any, rollbacks: Iterator[bool]) -> None:
        if "Ask" in state.awaits:
            request = msgspec.json.decode(self.engine.log(FLOW_ID)[-1].request)
            ask = request["options"][0] if request["type"] == "FirstOf" else request
            spec = self.specs[ask["n"]]
            if spec[0] == "await" and spec[3]:
                self.do(lambda e: e.cancel(FLOW_ID, "stop"), rollbacks)
                return
            value = spec[2] if spec[0] == "await" else spec[3]
            if value is not None:
                self.do(lambda e: e.resume(FLOW_ID, value, awaiting=Ask), rollbacks)
                return
        assert state.due is not None, state
        self.clock.now = max(self.clock.now, state.due)
        self.do(lambda e: e.fire_due_timers(), rollbacks)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows_with_effects, st.lists(st.booleans(), max_size=40))
def test_cached_and_uncached_engines_write_the_same_ledger_whatever_rolls_back(
    steps: list[list[Any]], rollbacks: list[bool]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        uncached = Driver(Path(tmp) / "uncached.db", steps, cache_size=0)
        cached = Driver(Path(tmp) / "cached.db", steps, cache_size=64)
        try:
            assert cached.run(iter(rollbacks)) == uncached.run(iter(rollbacks))
        finally:
            uncached.ledger.close()
            cached.ledger.close()


# -- another writer moves the flow ------------------------------------------------------------


class Wait(Request[int]):
    n: int


WAITS = Registry()


@flow("waits", registry=WAITS)
def waits(count: int):  # type: ignore[no-untyped-def]
    got = []
    for n in range(count):
        got.append((yield Wait(n=n)))
    return got


def _engine(ledger: Ledger, **kw: Any) -> Engine:
    return Engine(ledger, {}, clock=FakeClock(), registry=WAITS, **kw)


def test_a_step_taken_by_another_ledger_is_replayed_not_overtaken(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    with Ledger.open(path) as mine, Ledger.open(path) as theirs:
        here, there = _engine(mine), _engine(theirs)
        here.start("waits", 3, flow_id="f")
        here.resume("f", 10, awaiting=Wait)
        assert len(here.cache) == 1  # cached here, at the version this engine left
        there.resume("f", 20, awaiting=Wait)  # another connection moves the flow on
        here.resume("f", 30, awaiting=Wait)
        assert here.result("f") == [10, 20, 30]


def test_a_rolled_back_step_is_never_resumed_even_when_the_version_matches_again(
    tmp_path: Path,
) -> None:
    """Another writer brings the stream back to the rolled-back version, with other content."""
    path = tmp_path / "shared.db"
    with Ledger.open(path) as mine, Ledger.open(path) as theirs:
        here, there = _engine(mine), _engine(theirs)
        here.start("waits", 2, flow_id="f")
        with pytest.raises(Rollback), mine.transaction():
            here.resume("f", 1, awaiting=Wait)  # in memory the flow has taken 1 ...
            raise Rollback  # ... but the ledger never did
        there.resume("f", 2, awaiting=Wait)  # the same number of events, saying 2
        here.resume("f", 3, awaiting=Wait)
        assert here.result("f") == [2, 3]


def test_a_deploy_in_this_process_is_replayed_against(registry: Registry) -> None:
    @flow("deployed", registry=registry)
    def before(count: int):  # type: ignore[no-untyped-def]
        return (yield Wait(n=0)), (yield Wait(n=1))

    engine = Engine(MemoryStore(), {}, clock=FakeClock(), registry=registry)
    engine.start("deployed", 2, flow_id="f")
    engine.resume("f", 1, awaiting=Wait)

    @flow("deployed", registry=registry)
    def after(count: int):  # type: ignore[no-untyped-def]
        return (yield Wait(n=0)), -(yield Wait(n=1))

    engine.resume("f", 2, awaiting=Wait)
    assert engine.result("f") == [1, -2]  # the new code ran the last step


# -- bounds and exclusivity -----------------------------------------------------------------


def test_the_cache_stays_bounded_and_discards_what_it_drops() -> None:
    store = MemoryStore()
    engine = Engine(store, {}, clock=FakeClock(), registry=WAITS, cache_size=8)
    for n in range(50):
        engine.start("waits", 2, flow_id=f"f{n}")
    assert len(engine.cache) == 8
    engine.resume("f0", 5, awaiting=Wait)  # evicted long ago: replayed, and cached again
    assert len(engine.cache) == 8
    assert engine.status("f0").status == "waiting"


def test_a_cached_instance_is_lent_to_one_step_at_a_time() -> None:
    store = MemoryStore()
    engine = Engine(store, {}, clock=FakeClock(), registry=WAITS)
    engine.start("waits", 2, flow_id="f")
    version = store.version(stream_of("f"))
    lent = engine.cache.take("f", lambda: version, WAITS)
    assert lent is not None
    assert engine.cache.take("f", lambda: version, WAITS) is None  # a second step replays
    lent.discard()


def test_a_stale_instance_is_discarded_not_lent() -> None:
    store = MemoryStore()
    engine = Engine(store, {}, clock=FakeClock(), registry=WAITS)
    engine.start("waits", 2, flow_id="f")
    version = store.version(stream_of("f"))
    assert engine.cache.take("f", lambda: version + 1, WAITS) is None
    assert len(engine.cache) == 0


def test_a_store_without_commit_hooks_replays_every_step() -> None:
    class Plain:
        """A store with no `after_commit`: the engine cannot know when a step committed."""

        def __init__(self) -> None:
            self.inner = MemoryStore()

        def __getattr__(self, name: str) -> Any:
            if name == "after_commit":
                raise AttributeError(name)
            return getattr(self.inner, name)

    engine = Engine(Plain(), {}, clock=FakeClock(), registry=WAITS)
    engine.start("waits", 2, flow_id="f")
    engine.resume("f", 1, awaiting=Wait)
    assert len(engine.cache) == 0
    engine.resume("f", 2, awaiting=Wait)
    assert engine.result("f") == [1, 2]


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError, match="cache size"):
        InstanceCache(-1)


def test_dropping_an_engine_closes_its_cached_generators_itself(registry: Registry) -> None:
    """Closed by the garbage collector, a flow yielding in `finally` would raise there."""

    @flow("compensates", registry=registry)
    def compensates():  # type: ignore[no-untyped-def]
        try:
            yield Wait(n=0)
        finally:
            yield Wait(n=1)

    engine = Engine(MemoryStore(), {}, clock=FakeClock(), registry=registry)
    engine.start("compensates", flow_id="f")
    assert len(engine.cache) == 1
    closed = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "unraisablehook", closed.append)
        del engine
        gc.collect()
    assert closed == []  # nothing was left for the garbage collector to close
