"""Rebuilding instances from their logs: exact replay, divergence, discarding live copies."""

from __future__ import annotations

import gc
from typing import Any

import msgspec
import pytest
from flow_helpers import T0, Charge, Pay, Release, Reserve, make_engine

from flowlib import FlowError, NondeterminismError, Registry, StepFailed, Timer, Won, first_of, flow
from flowlib.log import (
    AnyFlowEvent,
    CancelledBy,
    Failed,
    FlowEnded,
    FlowStarted,
    Ok,
    StepAnswered,
    StepDone,
    StepPending,
)
from flowlib.replay import as_exception, decode_response, describe, encode, replay


class LogBuilder:
    """Writes a flow's log by hand (Azure's `ContextBuilder` idea)."""

    def __init__(self, flow_id: str, name: str, *args: Any, version: int = 1) -> None:
        self.flow_id, self.seq = flow_id, 0
        self.events: list[AnyFlowEvent] = [
            FlowStarted(
                flow_id=flow_id, name=name, version=version, args=encode(list(args)), started_at=T0
            )
        ]

    def done(self, request: Any, value: Any = None, failed: Failed | None = None) -> LogBuilder:
        outcome = failed or Ok(encode(value))
        self.events.append(StepDone(seq=self.seq, request=encode(request), outcome=outcome))
        self.seq += 1
        return self

    def wait(self, request: Any) -> LogBuilder:
        self.events.append(
            StepPending(seq=self.seq, request=encode(request), mode="await", status="waiting")
        )
        self.seq += 1
        return self

    def answer(self, outcome: Any) -> LogBuilder:
        self.events.append(StepAnswered(seq=self.seq - 1, outcome=outcome))
        return self


@pytest.fixture
def order_registry() -> Registry:
    registry = Registry()

    @flow("order", registry=registry)
    def order(sku: str):  # type: ignore[no-untyped-def]
        reservation = yield Reserve(sku=sku)
        try:
            amount = yield Pay(order=sku)
        except StepFailed:
            yield Release(sku=sku)
            return "released"
        receipt = yield Charge(amount=amount)
        return [reservation, receipt]

    return registry


def test_replay_positions_the_instance_after_its_log(order_registry) -> None:
    log = LogBuilder("o", "order", "A").done(Reserve(sku="A"), "r").wait(Pay(order="A"))
    inst = replay("o", log.events, order_registry)
    assert (inst.seq, inst.status, inst.version) == (2, "waiting", 3)
    assert inst.pending_request == Pay(order="A") and inst.ended is None
    inst.discard()


def test_replay_feeds_logged_answers_and_failures(order_registry) -> None:
    log = LogBuilder("o", "order", "A").done(Reserve(sku="A"), "r").wait(Pay(order="A"))
    log.answer(Failed(kind="declined"))
    inst = replay("o", log.events, order_registry)
    assert inst.status == "running" and inst.pending is None
    assert inst.advance() == Release(sku="A")  # the failure was thrown in, as live
    inst.discard()


def test_an_answered_cancel_marks_the_instance_cancelled(order_registry) -> None:
    log = LogBuilder("o", "order", "A").done(Reserve(sku="A"), "r").wait(Pay(order="A"))
    inst = replay("o", log.answer(CancelledBy("stop")).events, order_registry)
    assert inst.cancelled and inst.advance() == Release(sku="A")
    inst.discard()


def test_a_finished_log_replays_to_its_end(order_registry) -> None:
    engine = make_engine(order_registry)
    engine.start("order", "A", flow_id="o")
    engine.resume("o", 4, awaiting=Pay)
    inst = replay("o", engine.log("o"), order_registry)
    assert isinstance(inst.ended, FlowEnded) and inst.status == "completed"
    inst.discard()


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "does not begin with FlowStarted"),
        ([StepAnswered(seq=0, outcome=Ok(encode(1)))], "does not begin with FlowStarted"),
    ],
)
def test_a_log_without_its_head_is_refused(order_registry, events, message) -> None:
    with pytest.raises(FlowError, match=message):
        replay("o", events, order_registry)


def test_an_answer_to_a_step_never_opened_is_refused(order_registry) -> None:
    log = LogBuilder("o", "order", "A").done(Reserve(sku="A"), "r").answer(Ok(encode(1)))
    with pytest.raises(FlowError, match="never opened"):
        replay("o", log.events, order_registry)


def test_a_different_request_is_nondeterminism_naming_both(order_registry) -> None:
    log = LogBuilder("o", "order", "A").done(Reserve(sku="B"), "r")
    with pytest.raises(NondeterminismError) as info:
        replay("o", log.events, order_registry)
    assert (info.value.flow_id, info.value.step) == ("o", 0)
    assert info.value.logged == '{"type":"Reserve","sku":"B"}'
    assert info.value.yielded == '{"type":"Reserve","sku":"A"}'


def test_a_request_with_changed_options_is_nondeterminism(order_registry) -> None:
    from flowlib import RetryPolicy

    log = LogBuilder("o", "order", "A").done(Reserve(sku="A", retry=RetryPolicy()), "r")
    with pytest.raises(NondeterminismError, match="step 0"):
        replay("o", log.events, order_registry)


def test_code_that_raises_during_replay_is_nondeterminism(order_registry) -> None:
    log = LogBuilder("o", "order", "A").done(Reserve(sku="A"), "r").wait(Pay(order="A"))
    log.answer(Ok(encode(5))).done(Charge(amount=5), "c").done(Reserve(sku="extra"), "x")
    with pytest.raises(NondeterminismError) as info:
        replay("o", log.events, order_registry)
    assert info.value.step == 3 and info.value.yielded == "nothing (the flow ended)"


def test_unregistered_version_in_a_log_is_unknown_flow(order_registry) -> None:
    from flowlib import UnknownFlow

    log = LogBuilder("o", "order", "A", version=4)
    with pytest.raises(UnknownFlow):
        replay("o", log.events, order_registry)


def test_discard_never_runs_finally_compensation(recwarn) -> None:
    registry = Registry()
    ran: list[str] = []

    @flow("fin", registry=registry)
    def fin():  # type: ignore[no-untyped-def]
        try:
            yield Pay(order="a")
        finally:
            ran.append("finally")
            yield Release(sku="a")
            ran.append("after compensation")

    log = LogBuilder("f", "fin").wait(Pay(order="a"))
    inst = replay("f", log.events, registry)
    inst.discard()
    gc.collect()
    assert ran == ["finally"]  # the yield was dropped, the rest never ran
    assert inst.gen.gi_frame is None


def test_a_diverging_replay_discards_its_generator_cleanly() -> None:
    registry = Registry()

    @flow("fin", registry=registry)
    def fin():  # type: ignore[no-untyped-def]
        try:
            yield Pay(order="a")
            yield Reserve(sku="new")
        finally:
            yield Release(sku="a")

    log = LogBuilder("f", "fin").wait(Pay(order="a")).answer(Ok(encode(1))).done(Reserve(sku="old"))
    with pytest.raises(NondeterminismError):
        replay("f", log.events, registry)
    gc.collect()  # filterwarnings=error turns a leaked live generator into a failure


def test_decode_response_uses_the_declared_type_per_race_option() -> None:
    race = first_of(Pay(order="o"), Timer(seconds=1))
    won = decode_response(race, b'{"index":1,"winner":"Timer","value":"2026-01-01T00:00:00Z"}')
    assert won == Won(1, "Timer", T0)
    assert decode_response(Pay(order="o"), b"5") == 5
    with pytest.raises(msgspec.ValidationError):
        decode_response(Pay(order="o"), b'"5"')


def test_as_exception_and_describe() -> None:
    error = as_exception(Failed(kind="k", message="m", retryable=True))
    assert type(error) is StepFailed and (error.kind, error.message, error.retryable) == (
        "k",
        "m",
        True,
    )
    assert describe(None) == "nothing (the flow ended)"
    long = describe(msgspec.Raw(b'"' + b"x" * 500 + b'"'))
    assert len(long) == 200 and long.endswith("...")
