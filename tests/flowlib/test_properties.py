"""Properties over generated flows: moving a flow anywhere, or crashing anywhere, changes nothing.

A generated flow is data (a list of step specs) interpreted by one generic generator, so
hypothesis can shrink it. A harness drives it to the end the same way every time: it answers
each awaited request with the spec's response (or cancels), and fires timers, retries and
leases by moving the fake clock to their due instant.
"""

from __future__ import annotations

from typing import Any

import msgspec
from flow_helpers import Crash, FakeClock, FlakyStore, log_bytes, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlib import (
    FINISHED,
    Cancelled,
    Engine,
    MemoryStore,
    NewId,
    Now,
    Registry,
    Request,
    RetryPolicy,
    StepContext,
    StepFailed,
    Timer,
    effect,
    first_of,
    flow,
)

FLOW_ID = "g"


class Svc(Request[str]):
    n: int


class Boom(Request[str]):
    n: int


class Comp(Request[str]):
    n: int


class Ask(Request[int]):
    n: int


class Flaky(Request[str]):
    n: int
    fails: int


class Eff(Request[str]):
    n: int


REGISTRY = Registry()


@flow("generic", registry=REGISTRY)
def generic(steps: list[list[Any]]):  # type: ignore[no-untyped-def]
    """Interpret step specs; every spec starts with its kind and its unique number `n`."""
    out: list[Any] = []
    for spec in steps:
        kind, n = spec[0], spec[1]
        if kind == "serve":
            out.append((yield Svc(n=n)))
        elif kind == "fail":
            if spec[2]:  # caught and compensated
                try:
                    yield Boom(n=n)
                except StepFailed as failure:
                    out.append(["caught", failure.kind, failure.message, failure.retryable])
                    out.append((yield Comp(n=n)))
            else:
                yield Boom(n=n)
        elif kind == "await":
            try:
                out.append((yield Ask(n=n)))
            except Cancelled:
                out.append((yield Comp(n=n)))
                raise
        elif kind == "timer":
            out.append((yield Timer(seconds=spec[2])).isoformat())
        elif kind == "race":
            won = yield first_of(Ask(n=n), Timer(seconds=spec[2]))
            out.append([won.index, won.winner, str(won.value)])
        elif kind == "now":
            out.append((yield Now()).isoformat())
        elif kind == "newid":
            out.append((yield NewId()))
        elif kind == "retry":
            policy = RetryPolicy(max_attempts=spec[3], backoff_seconds=1.5)
            try:
                out.append((yield Flaky(n=n, fails=spec[2], retry=policy)))
            except StepFailed as failure:
                out.append(["gave up", failure.kind])
                out.append((yield Comp(n=n)))
        elif kind == "effect":
            out.append((yield Eff(n=n)))
    return out


def svc(request: Svc, ctx: StepContext) -> str:
    # The handler's own write shares the step's transaction (checked by the crash property).
    ctx.tx.append("side", [request], expected_version=ctx.tx.version("side"))
    return f"s{request.n}@{ctx.seq}"


def boom(request: Boom, ctx: StepContext) -> str:
    raise StepFailed("boom", f"n={request.n}", retryable=request.n % 2 == 0)


def flaky(request: Flaky, ctx: StepContext) -> str:
    if ctx.attempt <= request.fails:
        raise StepFailed("busy", f"attempt {ctx.attempt}", retryable=True)
    return f"f{request.n}#{ctx.attempt}"


EFFECT_CALLS: list[str] = []


def eff(request: Eff, ctx: StepContext) -> str:
    EFFECT_CALLS.append(ctx.idempotency_key)
    return f"e{request.n}:{ctx.idempotency_key}"


HANDLERS: dict[Any, Any] = {
    Svc: svc,
    Boom: boom,
    Comp: lambda request, ctx: f"c{request.n}",
    Flaky: flaky,
    Eff: effect(eff),
}


def new_engine(store: Any, clock: FakeClock) -> Engine:
    return Engine(store, HANDLERS, clock=clock, registry=REGISTRY)


# -- generated specs ---------------------------------------------------------------------------

_specs = st.one_of(
    st.just(["serve"]),
    st.tuples(st.just("fail"), st.booleans()).map(list),
    st.tuples(st.just("await"), st.integers(-5, 5), st.booleans()).map(
        lambda t: [t[0], t[1], t[2] and t[1] == 0]  # cancel now and then
    ),
    st.tuples(st.just("timer"), st.sampled_from([0, 1, 30, 3600])).map(list),
    st.tuples(st.just("race"), st.sampled_from([5, 60]), st.none() | st.integers(0, 9)).map(list),
    st.just(["now"]),
    st.just(["newid"]),
    st.tuples(st.just("retry"), st.integers(0, 3), st.integers(1, 3)).map(list),
)


def numbered(raw: list[list[Any]]) -> list[list[Any]]:
    """Give every spec its unique number `n` in second place."""
    return [[spec[0], n, *spec[1:]] for n, spec in enumerate(raw)]


flows = st.lists(_specs, max_size=12).map(numbered)
flows_with_effects = st.lists(_specs | st.just(["effect"]), max_size=12).map(numbered)


# -- the harness --------------------------------------------------------------------------------


class Harness:
    """Drives the generic flow to its end; `transfer` moves it to a fresh store at every stop."""

    def __init__(self, steps: list[list[Any]], store: Any, *, transfer: bool = False) -> None:
        self.steps, self.transfer, self.clock = steps, transfer, FakeClock()
        self.engine = new_engine(store, self.clock)
        self.specs = {spec[1]: spec for spec in steps}
        self.crashes = 0

    def attempt(self, operation: Any) -> Any:
        """Run an operation; after a simulated crash, retry it on a fresh engine."""
        while True:
            try:
                return operation(self.engine)
            except Crash:
                self.crashes += 1
                self.engine = new_engine(self.engine.store, self.clock)

    def run(self) -> Harness:
        self.attempt(lambda e: e.start("generic", self.steps, flow_id=FLOW_ID))
        for _ in range(10 * len(self.steps) + 10):
            state = self.engine.status(FLOW_ID)
            if state.status in FINISHED:
                return self
            if self.transfer:
                self.move()
            self.act(state)
        raise AssertionError("the flow did not finish")

    def move(self) -> None:
        document = self.engine.export()
        fresh = new_engine(MemoryStore(), self.clock)
        fresh.import_(document)
        assert fresh.export() == document
        self.engine = fresh

    def act(self, state: Any) -> None:
        if "Ask" in state.awaits:
            request = msgspec.json.decode(self.engine.log(FLOW_ID)[-1].request)
            ask = request["options"][0] if request["type"] == "FirstOf" else request
            spec = self.specs[ask["n"]]
            if spec[0] == "await" and spec[3]:
                self.attempt(lambda e: e.cancel(FLOW_ID, "stop"))
                return
            value = spec[2] if spec[0] == "await" else spec[3]
            if value is not None:
                self.attempt(lambda e: e.resume(FLOW_ID, value, awaiting=Ask))
                return
        assert state.due is not None, state
        self.clock.now = max(self.clock.now, state.due)
        self.attempt(lambda e: e.fire_due_timers())

    def outcome(self) -> tuple[str, Any]:
        state = self.engine.status(FLOW_ID)
        try:
            return state.status, self.engine.result(FLOW_ID)
        except StepFailed as failure:
            return state.status, [type(failure).__name__, failure.kind, failure.message]

    def log(self) -> bytes:
        return log_bytes(self.engine.store, FLOW_ID)


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(flows_with_effects)
def test_moving_a_flow_at_every_suspension_changes_nothing(steps: list[list[Any]]) -> None:
    straight = Harness(steps, MemoryStore()).run()
    moved = Harness(steps, MemoryStore(), transfer=True).run()
    assert moved.outcome() == straight.outcome()
    assert moved.log() == straight.log()


@PROPERTY
@given(flows, st.data())
def test_crashing_after_any_append_and_resuming_matches_an_uninterrupted_run(
    steps: list[list[Any]], data: st.DataObject
) -> None:
    counting = FlakyStore()
    straight = Harness(steps, counting).run()
    k = data.draw(st.integers(1, counting.appends), label="crash on append")
    crashed = Harness(steps, FlakyStore(fail_on=k)).run()
    assert crashed.engine.store.fail_on is None  # the crash did happen
    assert crashed.outcome() == straight.outcome()
    assert crashed.log() == straight.log()
    assert snapshot(crashed.engine.store) == snapshot(counting)  # handler writes included


@settings(max_examples=30, deadline=None)
@given(flows_with_effects)
def test_every_unfinished_instance_replays_and_passes_the_gate(steps: list[list[Any]]) -> None:
    harness = Harness(steps, MemoryStore())
    harness.attempt(lambda e: e.start("generic", steps, flow_id=FLOW_ID))
    for _ in range(10 * len(steps) + 10):
        state = harness.engine.status(FLOW_ID)
        before = snapshot(harness.engine.store)
        assert harness.engine.check_replay([FLOW_ID]) == []
        assert snapshot(harness.engine.store) == before
        if state.status in FINISHED:
            break
        harness.act(state)


@PROPERTY
@given(flows_with_effects, st.data())
def test_a_crash_around_an_effect_repeats_it_only_with_the_same_key(
    steps: list[list[Any]], data: st.DataObject
) -> None:
    """Effects run outside the transaction, so a crash may repeat one: always with its key.

    The recovery waits out the call lease, which moves the clock, so only what does not
    depend on the clock is compared: the status, and which effects ran and were recorded.
    """
    EFFECT_CALLS.clear()
    counting = FlakyStore()
    straight = Harness(steps, counting).run()
    keys = list(EFFECT_CALLS)
    assert len(keys) == len(set(keys))  # without a crash each effect runs once
    EFFECT_CALLS.clear()
    k = data.draw(st.integers(1, counting.appends), label="crash on append")
    crashed = Harness(steps, FlakyStore(fail_on=k)).run()
    assert crashed.outcome()[0] == straight.outcome()[0]
    assert set(EFFECT_CALLS) == set(keys) and len(EFFECT_CALLS) <= len(keys) + 1
    answered = [e for e in crashed.engine.log(FLOW_ID) if type(e).__name__ == "StepAnswered"]
    assert len({e.seq for e in answered}) == len(answered)  # no step answered twice
