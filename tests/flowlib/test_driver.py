"""The engine contract: start, resume, result, versions, built-ins, failures, cancel, stuck."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flow_helpers import (
    HANDLERS,
    T0,
    Approve,
    Charge,
    FakeClock,
    GetQuote,
    Pay,
    Quote,
    Release,
    Reserve,
    kinds,
    make_engine,
    snapshot,
)

from flowlib import (
    Cancelled,
    Engine,
    FlowError,
    FlowNotFound,
    MemoryStore,
    NewId,
    NondeterminismError,
    Now,
    Registry,
    StepContext,
    StepFailed,
    Timer,
    UnknownFlow,
    Won,
    WrongResponse,
    first_of,
    flow,
)
from flowlib.log import FlowEnded, FlowStuck, Ok, StepDone, StepPending


def register_order(registry: Registry, version: int = 1) -> None:
    @flow("order", version=version, registry=registry)
    def order(sku: str):  # type: ignore[no-untyped-def]
        reservation = yield Reserve(sku=sku)
        amount = yield Pay(order=sku)
        receipt = yield Charge(amount=amount)
        return [version, reservation, amount, receipt]


# -- start, resume, result ----------------------------------------------------------------


def test_start_runs_serviced_steps_and_suspends_on_an_awaited_request(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    state = engine.start("order", "A1", flow_id="o1")
    assert (state.flow_id, state.name, state.version) == ("o1", "order", 1)
    assert state.status == "waiting" and state.awaits == ["Pay"] and state.due is None
    assert engine.status("o1") == state
    assert kinds(engine.store, "o1") == ["FlowStarted", "StepDone", "StepPending"]


def test_resume_runs_to_the_end_and_result_returns_the_value(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="o1")
    answer = engine.resume("o1", 250, awaiting=Pay)
    assert answer.resumed and answer.status == "completed" and answer.reason == ""
    assert engine.result("o1") == [1, "res-A1", 250, "ch-250"]
    assert engine.status("o1").status == "completed"
    assert kinds(engine.store, "o1")[-3:] == ["StepAnswered", "StepDone", "FlowEnded"]


def test_start_without_id_makes_a_fresh_one(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    a, b = engine.start("order", "x"), engine.start("order", "x")
    assert a.flow_id != b.flow_id and len(a.flow_id) >= 16


def test_starting_an_existing_id_never_runs_it_twice(registry) -> None:
    register_order(registry)
    calls: list[str] = []

    def counting(request: Reserve, ctx: StepContext) -> str:
        calls.append(request.sku)
        return "r"

    engine = make_engine(registry, {**HANDLERS, Reserve: counting})
    first = engine.start("order", "A1", flow_id="o1")
    before = snapshot(engine.store)
    again = engine.start("order", "OTHER", flow_id="o1")
    assert again == first and calls == ["A1"]
    assert snapshot(engine.store) == before
    engine.resume("o1", 5, awaiting=Pay)
    assert engine.start("order", "A1", flow_id="o1").status == "completed"
    assert calls == ["A1"]


def test_start_new_says_whether_this_call_started_the_flow(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    first = engine.start_new("order", "A1", flow_id="o1")
    assert first is not None and first.flow_id == "o1"
    before = snapshot(engine.store)
    assert engine.start_new("order", "OTHER", flow_id="o1") is None
    assert snapshot(engine.store) == before


def test_a_second_engine_on_the_same_store_continues_the_flow(registry) -> None:
    register_order(registry)
    store = MemoryStore()
    make_engine(registry, store=store).start("order", "A1", flow_id="o1")
    later = make_engine(registry, store=store)
    assert later.resume("o1", 7, awaiting=Pay).status == "completed"
    assert later.result("o1") == [1, "res-A1", 7, "ch-7"]


def test_flows_lists_instances_by_status(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "a", flow_id="w")
    engine.start("order", "b", flow_id="d")
    engine.resume("d", 1, awaiting=Pay)
    assert [s.flow_id for s in engine.flows()] == ["w", "d"]
    assert [s.flow_id for s in engine.flows("waiting")] == ["w"]
    assert engine.flows("waiting")[0].awaits == ["Pay"]
    assert [s.flow_id for s in engine.flows("completed")] == ["d"]


# -- resume: idempotence and bad input ------------------------------------------------------


def test_resume_twice_answers_not_waiting_and_changes_nothing(registry) -> None:
    @flow("two", registry=registry)
    def two():  # type: ignore[no-untyped-def]
        first = yield Pay(order="a")
        second = yield Approve(who="boss")
        return [first, second]

    engine = make_engine(registry)
    engine.start("two", flow_id="t")
    assert engine.resume("t", 1, awaiting=Pay).resumed
    before = snapshot(engine.store)
    again = engine.resume("t", 1, awaiting=Pay)
    assert not again.resumed and again.status == "waiting"
    assert "not waiting on Pay" in again.reason and "Approve" in again.reason
    assert snapshot(engine.store) == before
    assert engine.resume("t", True, awaiting=Approve).status == "completed"
    assert engine.result("t") == [1, True]


def test_resume_with_the_wrong_response_type_is_refused(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="o1")
    before = snapshot(engine.store)
    for bad in ("250", 2.5, None, [1], {"a": 1}):
        with pytest.raises(WrongResponse) as info:
            engine.resume("o1", bad, awaiting=Pay)
        assert info.value.flow_id == "o1" and info.value.expected == "int"
        assert snapshot(engine.store) == before
    assert engine.status("o1").status == "waiting"


def test_resume_with_an_unencodable_response_is_wrong_response(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="o1")
    before = snapshot(engine.store)
    with pytest.raises(WrongResponse):
        engine.resume("o1", object(), awaiting=Pay)
    assert snapshot(engine.store) == before


def test_structured_responses_are_validated_and_decoded(registry) -> None:
    @flow("quoted", registry=registry)
    def quoted():  # type: ignore[no-untyped-def]
        quote = yield GetQuote(sku="a")
        return quote.total

    engine = make_engine(registry)
    engine.start("quoted", flow_id="q")
    with pytest.raises(WrongResponse):
        engine.resume("q", {"total": "lots"}, awaiting=GetQuote)
    engine.resume("q", Quote(total=12, currency="EUR"), awaiting=GetQuote)
    assert engine.result("q") == 12


def test_resume_for_a_request_it_does_not_await_is_not_waiting(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="o1")
    before = snapshot(engine.store)
    answer = engine.resume("o1", True, awaiting=Approve)
    assert not answer.resumed and answer.status == "waiting"
    assert snapshot(engine.store) == before


def test_resuming_a_finished_or_cancelled_flow_is_not_waiting(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="done")
    engine.resume("done", 1, awaiting=Pay)
    engine.start("order", "A1", flow_id="gone")
    engine.cancel("gone", "customer")
    before = snapshot(engine.store)
    for flow_id, status in (("done", "completed"), ("gone", "cancelled")):
        answer = engine.resume(flow_id, 1, awaiting=Pay)
        assert (answer.resumed, answer.status) == (False, status)
        assert "not waiting" in answer.reason
    assert snapshot(engine.store) == before


def test_unknown_flow_id_is_flow_not_found_everywhere(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    operations = [
        lambda: engine.resume("nope", 1, awaiting=Pay),
        lambda: engine.cancel("nope"),
        lambda: engine.status("nope"),
        lambda: engine.result("nope"),
        lambda: engine.log("nope"),
        lambda: engine.load("nope"),
    ]
    for operation in operations:
        with pytest.raises(FlowNotFound) as info:
            operation()
        assert info.value.flow_id == "nope" and "'nope'" in str(info.value)
    assert engine.store.streams() == []


def test_unregistered_name_or_version_is_unknown_flow_and_writes_nothing(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    with pytest.raises(UnknownFlow, match="'refund' is not registered"):
        engine.start("refund", flow_id="r")
    with pytest.raises(
        UnknownFlow, match=r"'order v9' is not registered \(registered versions: v1\)"
    ):
        engine.start("order", "A1", version=9, flow_id="r")
    assert engine.store.streams() == []


def test_result_of_an_unfinished_flow_is_an_error(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="o1")
    with pytest.raises(FlowError, match="has not finished"):
        engine.result("o1")


# -- versions -----------------------------------------------------------------------------


def test_an_instance_keeps_the_version_it_started_with(registry) -> None:
    register_order(registry, version=1)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="old")
    register_order(registry, version=2)
    engine.start("order", "A1", flow_id="new")
    engine.start("order", "A1", flow_id="pinned", version=1)
    assert [engine.status(f).version for f in ("old", "new", "pinned")] == [1, 2, 1]
    for flow_id in ("old", "new", "pinned"):
        engine.resume(flow_id, 3, awaiting=Pay)
    assert [engine.result(f)[0] for f in ("old", "new", "pinned")] == [1, 2, 1]


def test_a_missing_version_is_a_clear_error_and_the_log_is_kept(registry) -> None:
    register_order(registry, version=1)
    store = MemoryStore()
    make_engine(registry, store=store).start("order", "A1", flow_id="o1")
    newer = Registry()
    register_order(newer, version=2)
    engine = make_engine(newer, store=store)
    before = snapshot(store)
    with pytest.raises(UnknownFlow, match="'order v1' is not registered"):
        engine.resume("o1", 1, awaiting=Pay)
    with pytest.raises(UnknownFlow):
        engine.cancel("o1")
    assert snapshot(store) == before


# -- Now and NewId --------------------------------------------------------------------------


def test_now_and_new_id_are_logged_and_stable_on_replay(registry, clock) -> None:
    @flow("stamp", registry=registry)
    def stamp():  # type: ignore[no-untyped-def]
        first = yield Now()
        a = yield NewId()
        b = yield NewId()
        yield Pay(order="x")
        second = yield Now()
        return [first.isoformat(), a, b, second.isoformat()]

    engine = make_engine(registry, clock=clock)
    engine.start("stamp", flow_id="s")
    log = engine.log("s")
    assert isinstance(log[1], StepDone) and isinstance(log[1].outcome, Ok)
    assert bytes(log[1].outcome.value) == b'"2026-01-01T00:00:00Z"'
    clock.advance(3600)
    engine.resume("s", 1, awaiting=Pay)
    first, a, b, second = engine.result("s")
    assert first == T0.isoformat() and second == (T0 + timedelta(hours=1)).isoformat()
    assert a != b and len(a) == 32
    # Same flow id and step: same id in another store; another flow id: another id.
    again = make_engine(registry, clock=FakeClock(T0 + timedelta(days=9)))
    again.start("stamp", flow_id="s")
    again.resume("s", 1, awaiting=Pay)
    assert again.result("s")[1:3] == [a, b]
    other = make_engine(registry, clock=clock)
    other.start("stamp", flow_id="t")
    other.resume("t", 1, awaiting=Pay)
    assert other.result("t")[1] != a


# -- timers ---------------------------------------------------------------------------------


def test_timer_after_seconds_fires_by_the_engine_clock(registry, clock) -> None:
    @flow("sleepy", registry=registry)
    def sleepy():  # type: ignore[no-untyped-def]
        fired_at = yield Timer(seconds=60)
        return fired_at.isoformat()

    engine = make_engine(registry, clock=clock)
    state = engine.start("sleepy", flow_id="z")
    due = T0 + timedelta(seconds=60)
    assert (state.status, state.awaits, state.due) == ("waiting", ["Timer"], due)
    assert engine.fire_due_timers(due - timedelta(microseconds=1)) == []
    clock.advance(59)
    assert engine.fire_due_timers() == []
    clock.advance(1)
    [fired] = engine.fire_due_timers()
    assert (fired.flow_id, fired.mode, fired.status) == ("z", "await", "completed")
    assert engine.result("z") == due.isoformat()
    assert engine.fire_due_timers(due + timedelta(days=1)) == []


def test_timer_at_an_instant(registry, clock) -> None:
    at = T0 + timedelta(days=2)

    @flow("alarm", registry=registry)
    def alarm():  # type: ignore[no-untyped-def]
        yield Timer(at=at)
        return "rang"

    engine = make_engine(registry, clock=clock)
    assert engine.start("alarm", flow_id="a").due == at
    assert engine.fire_due_timers(at - timedelta(seconds=1)) == []
    assert [f.status for f in engine.fire_due_timers(at + timedelta(hours=1))] == ["completed"]
    assert engine.result("a") == "rang"


def test_fire_due_timers_respects_limit_and_due_order(registry, clock) -> None:
    @flow("sleepy", registry=registry)
    def sleepy(seconds: int):  # type: ignore[no-untyped-def]
        yield Timer(seconds=seconds)
        return seconds

    engine = make_engine(registry, clock=clock)
    for seconds in (30, 10, 20):
        engine.start("sleepy", seconds, flow_id=f"s{seconds}")
    fired = engine.fire_due_timers(T0 + timedelta(minutes=5), limit=2)
    assert [f.flow_id for f in fired] == ["s10", "s20"]
    assert [f.flow_id for f in engine.fire_due_timers(T0 + timedelta(minutes=5))] == ["s30"]


def test_a_timer_can_be_resumed_by_hand(registry) -> None:
    @flow("sleepy", registry=registry)
    def sleepy():  # type: ignore[no-untyped-def]
        at = yield Timer(seconds=60)
        return at.isoformat()

    engine = make_engine(registry)
    engine.start("sleepy", flow_id="z")
    assert engine.resume("z", T0, awaiting=Timer).status == "completed"
    assert engine.fire_due_timers(T0 + timedelta(days=1)) == []


# -- races ----------------------------------------------------------------------------------


def register_race(registry: Registry) -> None:
    @flow("race", registry=registry)
    def race():  # type: ignore[no-untyped-def]
        won = yield first_of(Pay(order="o"), Timer(seconds=60))
        after = yield Approve()
        return [won.index, won.winner, str(won.value), after]


def test_first_of_records_the_winner_and_withdraws_the_timer(registry, clock) -> None:
    register_race(registry)
    engine = make_engine(registry, clock=clock)
    state = engine.start("race", flow_id="r")
    assert state.awaits == ["Pay", "Timer"] and state.due == T0 + timedelta(seconds=60)
    engine.resume("r", 99, awaiting=Pay)
    answered = engine.log("r")[2]
    assert bytes(answered.outcome.value) == b'{"index":0,"winner":"Pay","value":99}'
    # The lost timer never fires, not even long after it fell due.
    assert engine.status("r").due is None
    assert engine.fire_due_timers(T0 + timedelta(days=30)) == []
    engine.resume("r", True, awaiting=Approve)
    assert engine.result("r") == [0, "Pay", "99", True]


def test_when_the_timer_wins_a_late_answer_is_not_waiting(registry, clock) -> None:
    register_race(registry)
    engine = make_engine(registry, clock=clock)
    engine.start("race", flow_id="r")
    clock.advance(60)
    assert [f.mode for f in engine.fire_due_timers()] == ["await"]
    before = snapshot(engine.store)
    late = engine.resume("r", 99, awaiting=Pay)
    assert not late.resumed and late.status == "waiting" and "Approve" in late.reason
    assert snapshot(engine.store) == before
    engine.resume("r", False, awaiting=Approve)
    index, winner, value, _ = engine.result("r")
    assert (index, winner) == (1, "Timer")
    assert value == str(T0 + timedelta(seconds=60))


def test_first_of_answers_the_option_that_was_resumed(registry) -> None:
    @flow("either", registry=registry)
    def either():  # type: ignore[no-untyped-def]
        won = yield first_of(Pay(order="o"), Approve(who="x"))
        assert isinstance(won, Won)
        return [won.index, won.winner, won.value]

    engine = make_engine(registry)
    engine.start("either", flow_id="e")
    with pytest.raises(WrongResponse):
        engine.resume("e", "yes", awaiting=Approve)
    engine.resume("e", True, awaiting=Approve)
    assert engine.result("e") == [1, "Approve", True]


def test_the_earliest_of_two_timers_wins(registry, clock) -> None:
    @flow("timers", registry=registry)
    def timers():  # type: ignore[no-untyped-def]
        won = yield first_of(Pay(order="o"), Timer(seconds=600), Timer(seconds=60))
        return [won.index, won.value.isoformat()]

    engine = make_engine(registry, clock=clock)
    assert engine.start("timers", flow_id="t").due == T0 + timedelta(seconds=60)
    engine.fire_due_timers(T0 + timedelta(seconds=60))
    assert engine.result("t") == [2, (T0 + timedelta(seconds=60)).isoformat()]


# -- handler failures and retries ------------------------------------------------------------


def test_a_handler_failure_is_thrown_into_the_flow_which_compensates(registry) -> None:
    seen: list[Any] = []

    @flow("comp", registry=registry)
    def comp():  # type: ignore[no-untyped-def]
        yield Reserve(sku="a")
        try:
            yield Charge(amount=5)
        except StepFailed as failure:
            seen.append((type(failure), failure.kind, failure.message, failure.retryable))
            released = yield Release(sku="a")
            return ["declined", released]
        return ["paid"]

    def fail(request: Charge, ctx: StepContext) -> str:
        raise StepFailed("card_declined", "no funds", retryable=True)

    engine = make_engine(registry, {**HANDLERS, Charge: fail})
    assert engine.start("comp", flow_id="c").status == "completed"
    assert engine.result("c") == ["declined", "released-a"]
    assert seen == [(StepFailed, "card_declined", "no funds", True)]
    failed = engine.log("c")[2]
    assert isinstance(failed, StepDone)
    assert bytes(failed.request) == b'{"type":"Charge","amount":5}'
    assert failed.outcome.kind == "card_declined" and failed.outcome.retryable


def test_an_uncaught_exception_fails_the_flow_with_the_error_recorded(registry) -> None:
    @flow("boom", registry=registry)
    def boom():  # type: ignore[no-untyped-def]
        yield Reserve(sku="a")
        raise ValueError("bad sku")

    @flow("declined", registry=registry)
    def declined_flow():  # type: ignore[no-untyped-def]
        yield Charge(amount=5)

    def fail(request: Charge, ctx: StepContext) -> str:
        raise StepFailed("card_declined", "no funds")

    engine = make_engine(registry, {**HANDLERS, Charge: fail})
    assert engine.start("boom", flow_id="b").status == "failed"
    ended = engine.log("b")[-1]
    assert isinstance(ended, FlowEnded) and ended.status == "failed"
    assert (ended.error.kind, ended.error.message) == ("ValueError", "bad sku")
    with pytest.raises(StepFailed) as info:
        engine.result("b")
    assert (info.value.kind, info.value.message) == ("ValueError", "bad sku")
    assert engine.start("declined", flow_id="d").status == "failed"
    with pytest.raises(StepFailed, match="card_declined: no funds"):
        engine.result("d")


def test_an_exception_before_the_first_yield_fails_the_flow(registry) -> None:
    @flow("early", registry=registry)
    def early(n: int):  # type: ignore[no-untyped-def]
        if n < 0:
            raise ValueError("negative")
        yield Reserve(sku="a")

    engine = make_engine(registry)
    assert engine.start("early", -1, flow_id="e").status == "failed"
    assert kinds(engine.store, "e") == ["FlowStarted", "FlowEnded"]


def test_retryable_failures_are_retried_durably_with_backoff(registry, clock) -> None:
    from flowlib import RetryPolicy

    attempts: list[int] = []

    def flaky(request: Charge, ctx: StepContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise StepFailed("rate_limited", f"try {ctx.attempt}", retryable=True)
        return "paid"

    @flow("retry", registry=registry)
    def retry():  # type: ignore[no-untyped-def]
        policy = RetryPolicy(max_attempts=4, backoff_seconds=10, multiplier=2)
        return (yield Charge(amount=5, retry=policy))

    engine = make_engine(registry, {Charge: flaky}, clock=clock)
    state = engine.start("retry", flow_id="r")
    assert (state.status, state.due) == ("waiting", T0 + timedelta(seconds=10))
    assert engine.fire_due_timers(T0 + timedelta(seconds=9)) == []
    clock.advance(10)
    [fired] = engine.fire_due_timers()
    assert (fired.mode, fired.status) == ("retry", "waiting")
    assert engine.status("r").due == clock.now + timedelta(seconds=20)
    clock.advance(20)
    assert [f.status for f in engine.fire_due_timers()] == ["completed"]
    assert engine.result("r") == "paid" and attempts == [1, 2, 3]
    retries = [e for e in engine.log("r") if isinstance(e, StepPending)]
    assert [(p.mode, p.attempts, p.error.message) for p in retries] == [
        ("retry", 1, "try 1"),
        ("retry", 2, "try 2"),
    ]
    assert all(p.seq == 0 for p in retries)


def test_exhausted_retries_are_thrown_into_the_flow(registry, clock) -> None:
    from flowlib import RetryPolicy

    def always(request: Charge, ctx: StepContext) -> str:
        raise StepFailed("rate_limited", "busy", retryable=True)

    @flow("retry", registry=registry)
    def retry():  # type: ignore[no-untyped-def]
        try:
            yield Charge(amount=5, retry=RetryPolicy(max_attempts=3, backoff_seconds=1))
        except StepFailed as failure:
            return [failure.kind, failure.retryable]

    engine = make_engine(registry, {Charge: always}, clock=clock)
    engine.start("retry", flow_id="r")
    for _ in range(5):
        clock.advance(60)
        engine.fire_due_timers()
    assert engine.result("r") == ["rate_limited", True]
    last = engine.log("r")[-2]
    assert last.outcome.attempts == 3


def test_non_retryable_failures_are_not_retried(registry) -> None:
    from flowlib import RetryPolicy

    calls: list[int] = []

    def fatal(request: Charge, ctx: StepContext) -> str:
        calls.append(ctx.attempt)
        raise StepFailed("stolen_card", retryable=False)

    @flow("once", registry=registry)
    def once():  # type: ignore[no-untyped-def]
        yield Charge(amount=1, retry=RetryPolicy(max_attempts=5))

    engine = make_engine(registry, {Charge: fatal})
    assert engine.start("once", flow_id="o").status == "failed"
    assert calls == [1]


def test_a_handler_crash_records_nothing_and_the_step_reruns(registry) -> None:
    register_order(registry)
    broken = {"on": True}

    def crashy(request: Charge, ctx: StepContext) -> str:
        if broken["on"]:
            raise RuntimeError("database went away")
        return "ok"

    engine = make_engine(registry, {**HANDLERS, Charge: crashy})
    engine.start("order", "A1", flow_id="o1")
    before = snapshot(engine.store)
    with pytest.raises(RuntimeError, match="went away"):
        engine.resume("o1", 5, awaiting=Pay)
    assert snapshot(engine.store) == before
    assert engine.status("o1").status == "waiting"
    broken["on"] = False
    assert engine.resume("o1", 5, awaiting=Pay).status == "completed"


def test_a_handler_crash_during_start_leaves_no_instance(registry) -> None:
    register_order(registry)

    def crashy(request: Reserve, ctx: StepContext) -> str:
        raise RuntimeError("down")

    engine = make_engine(registry, {**HANDLERS, Reserve: crashy})
    with pytest.raises(RuntimeError):
        engine.start("order", "A1", flow_id="o1")
    assert engine.store.streams() == [] or engine.store.version("flow:o1") == 0
    with pytest.raises(FlowNotFound):
        engine.status("o1")
    fixed = make_engine(registry, store=engine.store)
    assert fixed.start("order", "A1", flow_id="o1").status == "waiting"


def test_handlers_write_in_the_steps_transaction(registry) -> None:
    """A handler's own writes (via ctx.tx) commit or roll back with the step."""

    def reserve_and_record(request: Reserve, ctx: StepContext) -> str:
        stream = f"stock:{request.sku}"
        ctx.tx.append(stream, [Reserve(sku=request.sku)], expected_version=ctx.tx.version(stream))
        return "r"

    def crashy(request: Charge, ctx: StepContext) -> str:
        raise RuntimeError("down")

    @flow("two", registry=registry)
    def two():  # type: ignore[no-untyped-def]
        yield Reserve(sku="a")
        yield Pay(order="a")
        yield Reserve(sku="b")
        yield Charge(amount=1)

    engine = make_engine(registry, {Reserve: reserve_and_record, Charge: crashy})
    engine.start("two", flow_id="t")
    assert engine.store.version("stock:a") == 1
    with pytest.raises(RuntimeError):
        engine.resume("t", 1, awaiting=Pay)
    assert engine.store.version("stock:b") == 0
    assert engine.status("t").status == "waiting"


def test_a_handler_returning_the_wrong_type_is_refused(registry) -> None:
    register_order(registry)
    engine = make_engine(registry, {**HANDLERS, Reserve: lambda request, ctx: 42})
    with pytest.raises(WrongResponse):
        engine.start("order", "A1", flow_id="o1")
    assert engine.store.version("flow:o1") == 0


# -- cancellation ------------------------------------------------------------------------------


def register_cancellable(registry: Registry) -> None:
    @flow("hold", registry=registry)
    def hold(sku: str):  # type: ignore[no-untyped-def]
        yield Reserve(sku=sku)
        try:
            amount = yield Pay(order=sku)
        except Cancelled as stop:
            released = yield Release(sku=sku)
            refunded = yield Refund(amount=0)
            return ["cancelled", stop.message, released, refunded]
        return ["paid", amount]


from flow_helpers import Refund  # noqa: E402


def test_cancel_throws_into_the_flow_and_services_its_compensation(registry) -> None:
    register_cancellable(registry)
    engine = make_engine(registry)
    engine.start("hold", "A1", flow_id="h")
    state = engine.cancel("h", "customer asked")
    assert state.status == "cancelled"
    assert engine.result("h") == ["cancelled", "customer asked", "released-A1", "rf-0"]
    assert kinds(engine.store, "h") == [
        "FlowStarted",
        "StepDone",
        "StepPending",
        "StepAnswered",
        "StepDone",
        "StepDone",
        "FlowEnded",
    ]


def test_an_uncaught_cancel_ends_cancelled_after_finally(registry) -> None:
    @flow("fin", registry=registry)
    def fin():  # type: ignore[no-untyped-def]
        try:
            yield Pay(order="a")
        finally:
            yield Release(sku="a")

    engine = make_engine(registry)
    engine.start("fin", flow_id="f")
    assert engine.cancel("f", "stop").status == "cancelled"
    assert kinds(engine.store, "f")[-2:] == ["StepDone", "FlowEnded"]
    with pytest.raises(Cancelled) as info:
        engine.result("f")
    assert (info.value.kind, info.value.message) == ("cancelled", "stop")


def test_cancelling_a_finished_flow_changes_nothing(registry) -> None:
    register_cancellable(registry)
    engine = make_engine(registry)
    engine.start("hold", "A1", flow_id="h")
    engine.resume("h", 3, awaiting=Pay)
    before = snapshot(engine.store)
    assert engine.cancel("h").status == "completed"
    engine.start("hold", "B", flow_id="c")
    engine.cancel("c")
    before = snapshot(engine.store)
    assert engine.cancel("c", "again").status == "cancelled"
    assert snapshot(engine.store) == before


def test_cancel_interrupts_a_retry_wait(registry, clock) -> None:
    from flowlib import RetryPolicy

    def busy(request: Charge, ctx: StepContext) -> str:
        raise StepFailed("busy", retryable=True)

    @flow("retry", registry=registry)
    def retry():  # type: ignore[no-untyped-def]
        try:
            yield Charge(amount=1, retry=RetryPolicy(max_attempts=9))
        except Cancelled:
            return "gave up"

    engine = make_engine(registry, {Charge: busy}, clock=clock)
    engine.start("retry", flow_id="r")
    assert engine.cancel("r").status == "cancelled"
    assert engine.result("r") == "gave up"
    assert engine.fire_due_timers(T0 + timedelta(days=1)) == []


# -- non-determinism ---------------------------------------------------------------------------


def test_changed_code_raises_nondeterminism_and_leaves_the_steps_intact(registry) -> None:
    register_order(registry)
    store = MemoryStore()
    make_engine(registry, store=store).start("order", "A1", flow_id="o1")
    steps_before = store.read("flow:o1")

    changed = Registry()

    @flow("order", registry=changed)
    def order(sku: str):  # type: ignore[no-untyped-def]
        yield Reserve(sku=sku + "-v2")
        yield Pay(order=sku)

    engine = make_engine(changed, store=store)
    with pytest.raises(NondeterminismError) as info:
        engine.resume("o1", 5, awaiting=Pay)
    error = info.value
    assert (error.flow_id, error.step) == ("o1", 0)
    assert error.logged == '{"type":"Reserve","sku":"A1"}'
    assert error.yielded == '{"type":"Reserve","sku":"A1-v2"}'
    for part in ("'o1'", "step 0", "A1-v2"):
        assert part in str(error)
    log = store.read("flow:o1")
    assert log[:-1] == steps_before and isinstance(log[-1], FlowStuck)
    assert engine.status("o1").status == "stuck"
    with pytest.raises(NondeterminismError):
        engine.cancel("o1")
    assert store.read("flow:o1") == log  # marked stuck once only

    # Reverting the code lets the instance continue.
    fixed = make_engine(registry, store=store)
    assert fixed.resume("o1", 5, awaiting=Pay).status == "completed"


def test_a_stuck_flow_keeps_its_timer_and_fires_it_once_the_code_is_fixed(registry) -> None:
    @flow("nap", registry=registry)
    def nap(sku: str):  # type: ignore[no-untyped-def]
        yield Reserve(sku=sku)
        yield Timer(seconds=60)
        return "woke"

    store = MemoryStore()
    make_engine(registry, store=store).start("nap", "A1", flow_id="n1")
    due = T0 + timedelta(seconds=60)
    changed = Registry()

    @flow("nap", registry=changed)
    def nap_v2(sku: str):  # type: ignore[no-untyped-def]
        yield Reserve(sku=sku + "-v2")
        yield Timer(seconds=60)
        return "woke"

    broken = make_engine(changed, store=store)
    fired = broken.fire_due_timers(due)
    assert [(f.flow_id, f.status) for f in fired] == [("n1", "stuck")]
    stuck = broken.status("n1")
    assert (stuck.status, stuck.awaits, stuck.due) == ("stuck", ["Timer"], due)
    assert [row.flow_id for row in store.flows(due_before=due)] == ["n1"]  # not stranded

    fixed = make_engine(registry, store=store)
    assert [f.status for f in fixed.fire_due_timers(due)] == ["completed"]
    assert fixed.result("n1") == "woke"


def test_code_that_ends_or_raises_early_is_nondeterministic(registry) -> None:
    register_order(registry)
    store = MemoryStore()
    make_engine(registry, store=store).start("order", "A1", flow_id="o1")
    shorter = Registry()

    @flow("order", registry=shorter)
    def order(sku: str):  # type: ignore[no-untyped-def]
        return "nothing"
        yield

    with pytest.raises(NondeterminismError, match="nothing \\(the flow ended\\)"):
        make_engine(shorter, store=store).resume("o1", 1, awaiting=Pay)


def test_a_diverged_timer_is_reported_by_fire_due_timers(registry, clock) -> None:
    @flow("sleepy", registry=registry)
    def sleepy():  # type: ignore[no-untyped-def]
        yield Timer(seconds=5)

    store = MemoryStore()
    make_engine(registry, store=store, clock=clock).start("sleepy", flow_id="z")
    changed = Registry()

    @flow("sleepy", registry=changed)
    def sleepy2():  # type: ignore[no-untyped-def]
        yield Timer(seconds=6)

    [fired] = make_engine(changed, store=store).fire_due_timers(T0 + timedelta(minutes=1))
    assert (fired.flow_id, fired.mode, fired.status) == ("z", "replay", "stuck")
    assert "step 0" in fired.error


def test_one_broken_flow_does_not_block_other_timers(registry, clock) -> None:
    @flow("sleepy", registry=registry)
    def sleepy(n: int):  # type: ignore[no-untyped-def]
        yield Timer(seconds=n)
        yield Charge(amount=n)
        return n

    def charge_or_crash(request: Charge, ctx: StepContext) -> str:
        if request.amount == 1:
            raise RuntimeError("poisoned")
        return "ok"

    engine = make_engine(registry, {Charge: charge_or_crash}, clock=clock)
    engine.start("sleepy", 1, flow_id="bad")
    engine.start("sleepy", 2, flow_id="good")
    fired = engine.fire_due_timers(T0 + timedelta(minutes=1))
    assert {f.flow_id: f.status for f in fired} == {"bad": "waiting", "good": "completed"}
    assert "poisoned" in next(f.error for f in fired if f.flow_id == "bad")
    assert engine.status("bad").status == "waiting"


def test_engine_defaults_use_the_global_registry_and_utc_clock() -> None:
    engine = Engine(MemoryStore())
    assert engine.handlers == {} and engine.call_lease == timedelta(seconds=30)
    assert engine.clock().tzinfo is not None


# -- outside effects ---------------------------------------------------------------------------

from flow_helpers import Crash, FlakyStore, ProbeStore  # noqa: E402

from flowlib import RetryPolicy, effect  # noqa: E402


def register_pay_flow(registry: Registry) -> None:
    @flow("pay", registry=registry)
    def pay(amount: int):  # type: ignore[no-untyped-def]
        reserved = yield Reserve(sku="a")
        try:
            receipt = yield Charge(amount=amount)
        except StepFailed as failure:
            yield Release(sku="a")
            return ["declined", failure.kind]
        return [reserved, receipt]


def test_an_effect_runs_with_no_transaction_open_and_its_answer_is_recorded(
    registry, clock
) -> None:
    register_pay_flow(registry)
    store = ProbeStore()
    seen: list[tuple[int, Any, str, int]] = []

    def charge(request: Charge, ctx: StepContext) -> str:
        seen.append((store.open, ctx.tx, ctx.idempotency_key, ctx.attempt))
        # The request is already committed: the log shows the call under way.
        pending = store.read("flow:e")[-1]
        assert isinstance(pending, StepPending) and pending.mode == "call"
        return "ch-1"

    def reserve(request: Reserve, ctx: StepContext) -> str:
        assert store.open == 1 and ctx.tx is store
        return "r"

    engine = make_engine(registry, {Reserve: reserve, Charge: effect(charge)}, store, clock)
    state = engine.start("pay", 10, flow_id="e")
    assert state.status == "completed" and engine.result("e") == ["r", "ch-1"]
    assert seen == [(0, None, "e:1", 1)]
    pending = engine.log("e")[2]
    assert (pending.mode, pending.status, pending.due) == (
        "call",
        "running",
        T0 + timedelta(seconds=30),
    )
    assert kinds(store, "e")[2:] == ["StepPending", "StepAnswered", "FlowEnded"]


def test_an_effect_interrupted_by_a_crash_reruns_with_the_same_key_after_its_lease(
    registry, clock
) -> None:
    register_pay_flow(registry)
    keys: list[str] = []
    crash = {"next": True}

    def charge(request: Charge, ctx: StepContext) -> str:
        keys.append(ctx.idempotency_key)
        if crash["next"]:
            crash["next"] = False
            raise Crash("process died mid-call")
        return "ch-ok"

    engine = make_engine(registry, {**HANDLERS, Charge: effect(charge)}, clock=clock)
    with pytest.raises(Crash):
        engine.start("pay", 10, flow_id="e")
    state = engine.status("e")
    assert (state.status, state.due) == ("running", T0 + timedelta(seconds=30))
    assert not engine.resume("e", "x", awaiting=Charge).resumed
    assert engine.fire_due_timers(T0 + timedelta(seconds=29)) == []
    recovered = make_engine(registry, {**HANDLERS, Charge: effect(charge)}, engine.store, clock)
    clock.advance(30)
    [fired] = recovered.fire_due_timers()
    assert (fired.mode, fired.status) == ("call", "completed")
    assert keys == ["e:1", "e:1"] and recovered.result("e") == ["res-a", "ch-ok"]


def test_an_effect_whose_answer_was_lost_is_repeated_with_the_same_key(registry, clock) -> None:
    register_pay_flow(registry)
    calls: list[tuple[str, int]] = []

    def charge(request: Charge, ctx: StepContext) -> str:
        calls.append((ctx.idempotency_key, ctx.attempt))
        return "ch"

    store = FlakyStore(fail_on=2)  # append 1: start; append 2: the effect's answer
    engine = make_engine(registry, {**HANDLERS, Charge: effect(charge)}, store, clock)
    with pytest.raises(Crash):
        engine.start("pay", 10, flow_id="e")
    assert calls == [("e:1", 1)] and engine.status("e").status == "running"
    clock.advance(31)
    engine.fire_due_timers()
    assert calls == [("e:1", 1), ("e:1", 1)]
    assert engine.result("e") == ["res-a", "ch"]


def test_an_effect_failure_is_thrown_into_the_flow(registry) -> None:
    register_pay_flow(registry)
    engine = make_engine(registry, {**HANDLERS, Charge: effect(declined)})
    assert engine.start("pay", 10, flow_id="e").status == "completed"
    assert engine.result("e") == ["declined", "card_declined"]


from flow_helpers import declined  # noqa: E402


def test_an_effect_is_retried_durably_with_the_same_key(registry, clock) -> None:
    calls: list[tuple[str, int, int]] = []

    def charge(request: Charge, ctx: StepContext) -> str:
        calls.append((ctx.idempotency_key, ctx.attempt, store.open))
        if ctx.attempt == 1:
            raise StepFailed("timeout", retryable=True)
        return "ch"

    @flow("retry", registry=registry)
    def retry():  # type: ignore[no-untyped-def]
        return (yield Charge(amount=1, retry=RetryPolicy(max_attempts=2, backoff_seconds=5)))

    store = ProbeStore()
    engine = make_engine(registry, {Charge: effect(charge)}, store, clock)
    assert engine.start("retry", flow_id="r").status == "waiting"
    clock.advance(5)
    assert [f.status for f in engine.fire_due_timers()] == ["completed"]
    assert calls == [("r:0", 1, 0), ("r:0", 2, 0)] and engine.result("r") == "ch"


def test_cancel_during_an_effect_wins_and_the_late_answer_is_ignored(registry, clock) -> None:
    register_pay_flow(registry)
    crash = {"next": True}

    def charge(request: Charge, ctx: StepContext) -> str:
        if crash["next"]:
            crash["next"] = False
            raise Crash("died")
        return "late"

    engine = make_engine(registry, {**HANDLERS, Charge: effect(charge)}, clock=clock)
    with pytest.raises(Crash):
        engine.start("pay", 10, flow_id="e")
    assert engine.cancel("e", "stop").status == "cancelled"  # caught, compensated, returned
    assert engine.result("e") == ["declined", "cancelled"]
    before = snapshot(engine.store)
    clock.advance(60)
    assert engine.fire_due_timers() == []
    assert snapshot(engine.store) == before


def test_effects_in_sequence_each_run_once(registry) -> None:
    calls: list[str] = []

    def charge(request: Charge, ctx: StepContext) -> str:
        calls.append(ctx.idempotency_key)
        return f"c{request.amount}"

    @flow("many", registry=registry)
    def many():  # type: ignore[no-untyped-def]
        out = []
        for amount in range(3):
            out.append((yield Charge(amount=amount)))
            out.append((yield Reserve(sku=str(amount))))
        return out

    engine = make_engine(registry, {**HANDLERS, Charge: effect(charge)})
    assert engine.start("many", flow_id="m").status == "completed"
    assert calls == ["m:0", "m:2", "m:4"]
    assert engine.result("m") == ["c0", "res-0", "c1", "res-1", "c2", "res-2"]


# -- more bad input and edge cases ------------------------------------------------------------


def test_a_flow_that_catches_cancel_can_keep_going_and_ends_cancelled(registry) -> None:
    @flow("stubborn", registry=registry)
    def stubborn():  # type: ignore[no-untyped-def]
        try:
            yield Pay(order="a")
        except Cancelled:
            ok = yield Approve(who="manager")
            return ["cancel acknowledged", ok]

    engine = make_engine(registry)
    engine.start("stubborn", flow_id="s")
    state = engine.cancel("s", "please")
    assert (state.status, state.awaits) == ("waiting", ["Approve"])
    assert not engine.resume("s", 1, awaiting=Pay).resumed
    assert engine.resume("s", True, awaiting=Approve).status == "cancelled"
    assert engine.result("s") == ["cancel acknowledged", True]


def test_a_flow_yielding_something_that_is_not_a_request_fails(registry) -> None:
    @flow("sloppy", registry=registry)
    def sloppy():  # type: ignore[no-untyped-def]
        yield Reserve(sku="a")
        yield "not a request"

    engine = make_engine(registry)
    assert engine.start("sloppy", flow_id="s").status == "failed"
    with pytest.raises(StepFailed, match=r"TypeError: .*not a Request"):
        engine.result("s")
    assert engine.check_replay(["s"]) == []


def test_resume_awaiting_something_that_is_not_a_request_type_is_a_type_error(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    engine.start("order", "A1", flow_id="o1")
    before = snapshot(engine.store)
    with pytest.raises(TypeError, match="Request subclass"):
        engine.resume("o1", 1, awaiting=int)  # type: ignore[arg-type]
    assert snapshot(engine.store) == before


def test_arguments_that_do_not_fit_the_hints_write_nothing(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    with pytest.raises((TypeError, ValueError)):
        engine.start("order", 12, flow_id="o1")
    with pytest.raises(TypeError):
        engine.start("order", object(), flow_id="o1")
    assert engine.store.streams() == []


def test_states_handed_out_do_not_alias_the_log(registry) -> None:
    register_order(registry)
    engine = make_engine(registry)
    before = snapshot(engine.store)
    engine.start("order", "A1", flow_id="o1").awaits.append("Mallory")
    engine.status("o1").awaits.append("Mallory")
    engine.flows()[0].awaits.append("Mallory")
    assert engine.status("o1").awaits == ["Pay"]
    assert b"Mallory" not in snapshot(engine.store)
    assert before != snapshot(engine.store)  # (the start itself did write)
