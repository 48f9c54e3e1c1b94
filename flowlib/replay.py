"""Rebuilding a live flow instance from its log, and feeding a generator its answers."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from flowlib.errors import Cancelled, FlowError, NondeterminismError, StepFailed
from flowlib.flow import FlowDefinition, Registry
from flowlib.log import (
    AnyFlowEvent,
    CancelledBy,
    Failed,
    FlowEnded,
    FlowStarted,
    FlowStuck,
    Ok,
    Outcome,
    StepAnswered,
    StepDone,
    StepPending,
)
from flowlib.requests import FirstOf, Request, Won, response_type

_encode = msgspec.json.Encoder().encode


def encode(value: Any) -> msgspec.Raw:
    """`value` as the exact JSON the log keeps."""
    return msgspec.Raw(_encode(value))


@functools.cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


def decode_response(request: Request[Any], raw: bytes) -> Any:
    """Decode a logged response with the type `request` declares (per option for a race)."""
    if isinstance(request, FirstOf):
        won = _decoder(Won[msgspec.Raw]).decode(raw)
        value = decode_response(request.options[won.index], won.value)
        return Won(won.index, won.winner, value)
    return _decoder(response_type(type(request))).decode(raw)


def describe(raw: bytes | msgspec.Raw | None) -> str:
    """A short printable form of a logged request, for error messages."""
    if raw is None:
        return "nothing (the flow ended)"
    text = bytes(raw).decode()
    return text if len(text) <= 200 else text[:197] + "..."


class Instance:
    """A live generator positioned just after its log, and what the log says about it."""

    def __init__(self, flow_id: str, definition: FlowDefinition, started: FlowStarted) -> None:
        self.flow_id = flow_id
        self.definition = definition
        self.gen = definition.fn(*definition.decode_args(started.args))
        self.version = 0  # events in the stream
        self.seq = 0  # the next step number
        self.status: str = started.status
        self.send: tuple[bool, Any] = (False, None)  # (throw?, value) for the next advance
        self.pending: StepPending | None = None
        self.pending_request: Request[Any] | None = None
        self.ended: FlowEnded | None = None
        self.cancelled = False

    def advance(self) -> Request[Any]:
        """Feed the generator its next input; returns the request it yields."""
        throw, value = self.send
        self.send = (False, None)
        return self.gen.throw(value) if throw else self.gen.send(value)

    def answer(self, request: Request[Any], outcome: Outcome) -> None:
        """Queue `outcome` (of `request`) as the generator's next input."""
        if isinstance(outcome, Ok):
            self.send = (False, decode_response(request, outcome.value))
        elif isinstance(outcome, CancelledBy):
            self.cancelled = True
            self.send = (True, Cancelled(outcome.reason))
        else:
            self.send = (True, as_exception(outcome))

    def discard(self) -> None:
        """Close the generator; requests its `finally` blocks yield while closing are dropped.

        A compensation in `finally` must only run when the engine drives it (cancel), never
        because a replayed copy was thrown away, so a yield during close is ignored.
        """
        for _ in range(8):
            try:
                self.gen.close()
                return
            except RuntimeError:  # the generator yielded while closing: close it again
                continue
            except Exception:  # the flow's own error while closing: nothing to keep
                return


def as_exception(failure: Failed) -> StepFailed:
    """The exception a logged failure is thrown into the flow as (the same live and on replay)."""
    return StepFailed(failure.kind, failure.message, retryable=failure.retryable)


def replay(
    flow_id: str, events: list[AnyFlowEvent], registry: Registry, *, check_finished: bool = False
) -> Instance:
    """Re-run the flow's code against its log; raise `NondeterminismError` on divergence.

    A finished log is not re-run (unless `check_finished`): its outcome stands whatever
    the code now says.
    """
    if not events or not isinstance(events[0], FlowStarted):
        raise FlowError(f"stream of flow {flow_id!r} does not begin with FlowStarted")
    started = events[0]
    inst = Instance(flow_id, registry.get(started.name, started.version), started)
    ended = finished(events)
    if ended is not None and not check_finished:
        inst.version, inst.ended, inst.status = len(events), ended, ended.status
        return inst
    try:
        _feed(inst, events)
    except BaseException:
        inst.discard()
        raise
    return inst


def finished(events: list[AnyFlowEvent]) -> FlowEnded | None:
    """The log's `FlowEnded`, if the flow finished (anything after it changes nothing)."""
    for event in reversed(events):
        if isinstance(event, FlowEnded):
            return event
    return None


def _feed(inst: Instance, events: list[AnyFlowEvent]) -> None:
    flow_id = inst.flow_id
    inst.version = len(events)
    for event in events[1:]:
        if isinstance(event, (StepDone, StepPending)) and event.seq == inst.seq:
            request = _expect(inst, event.seq, event.request)
            inst.seq += 1
            if isinstance(event, StepDone):
                inst.answer(request, event.outcome)
            else:
                inst.pending, inst.pending_request = event, request
        elif isinstance(event, StepPending):
            inst.pending = event  # a later attempt or mode of the open step
        elif isinstance(event, StepAnswered):
            if inst.pending_request is None:
                raise FlowError(f"log of flow {flow_id!r} answers step {event.seq}, never opened")
            inst.answer(inst.pending_request, event.outcome)
            inst.pending = inst.pending_request = None
        elif isinstance(event, FlowEnded):
            inst.ended = event
        if not isinstance(event, (StepDone, FlowStuck)):
            inst.status = event.status
    if inst.ended is None and inst.pending is None:
        inst.status = "running"


def _expect(inst: Instance, seq: int, logged: msgspec.Raw) -> Request[Any]:
    try:
        request = inst.advance()
    except StopIteration:
        raise NondeterminismError(inst.flow_id, seq, describe(logged), describe(None)) from None
    except Exception as exc:
        yielded = f"an exception {type(exc).__name__}: {exc}"
        raise NondeterminismError(inst.flow_id, seq, describe(logged), yielded) from exc
    raw = _encode(request)
    if raw != bytes(logged):
        raise NondeterminismError(inst.flow_id, seq, describe(logged), describe(raw))
    return request
