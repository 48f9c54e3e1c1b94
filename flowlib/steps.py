"""Taking steps: running a live instance's generator and recording what each request gets.

`Stepper` is the inside of the engine. It runs a generator until it waits, needs an outside
effect, or ends, appending one batch of events per transaction; it services requests that
have a handler, opens awaited ones, schedules durable retries, and checks every response
against the type its request declares. It knows nothing of loading or transactions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from flowlib.errors import Cancelled, StepFailed, WrongResponse
from flowlib.log import (
    Failed,
    FlowEnded,
    FlowEvent,
    Ok,
    Outcome,
    Status,
    StepAnswered,
    StepDone,
    StepPending,
    stream_of,
)
from flowlib.replay import Instance, decode_response, encode
from flowlib.requests import FirstOf, NewId, Now, Request, Timer, Won, response_type, tag_of
from flowlib.store import Store

Handler = Callable[[Any, "StepContext"], Any]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The default engine clock."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Effect:
    """Marks a handler as an outside effect: it runs with no transaction open.

    The engine records the request, commits, calls the handler with an idempotency key
    derived from the flow id and step, then records the answer. After a crash in between the
    call is repeated, with the same key, once its lease (`Engine.call_lease`) has run out.
    """

    fn: Handler


def effect(fn: Handler) -> Effect:
    """Mark `fn` as a handler for an outside effect (see `Effect`)."""
    return Effect(fn)


@dataclass(frozen=True)
class StepContext:
    """What a handler is told about the step it services."""

    flow_id: str
    seq: int
    now: datetime
    attempt: int
    tx: Any  # the store's transaction handle; None for an effect

    @property
    def idempotency_key(self) -> str:
        """Stable for this step across retries and crashes: pass it to outside services."""
        return f"{self.flow_id}:{self.seq}"


@dataclass(frozen=True)
class Call:
    """An outside effect to perform once the transaction that opened it has committed."""

    flow_id: str
    seq: int
    request: Request[Any]
    handler: Handler
    attempt: int


class Stepper:
    """Runs instances forward against a store and a handler map."""

    def __init__(
        self,
        store: Store,
        handlers: Mapping[type[Request[Any]], Handler | Effect],
        clock: Clock,
        call_lease: timedelta,
    ) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.clock = clock
        self.call_lease = call_lease

    def drive(self, inst: Instance, tx: Any, batch: list[FlowEvent]) -> list[Call]:
        """Run the generator until it waits, needs an outside effect, or ends; then append."""
        calls: list[Call] = []
        while inst.ended is None and inst.pending is None:
            try:
                request = inst.advance()
            except StopIteration as stop:
                self._end(inst, batch, result=stop.value)
                break
            except Exception as exc:
                self._end(inst, batch, error=exc)
                break
            if not isinstance(request, Request):  # a bug in the flow: fail it, as if it raised
                error = TypeError(f"flow yielded {request!r}, which is not a Request")
                self._end(inst, batch, error=error)
                break
            call = self._step(inst, tx, request, batch)
            if call is not None:
                calls.append(call)
        if batch:
            stream = stream_of(inst.flow_id)
            inst.version = self.store.append(stream, batch, expected_version=inst.version)
        return calls

    def close_step(self, inst: Instance, tx: Any, outcome: Outcome) -> list[Call]:
        """Answer the open step with `outcome` and run on."""
        if inst.pending is None or inst.pending_request is None:
            raise ValueError(f"flow {inst.flow_id!r} has no open step to answer")
        batch: list[FlowEvent] = [StepAnswered(seq=inst.pending.seq, outcome=outcome)]
        inst.answer(inst.pending_request, outcome)
        inst.pending = inst.pending_request = None
        return self.drive(inst, tx, batch)

    def answer(self, inst: Instance, tx: Any, value: Any) -> list[Call]:
        """Answer the open step with `value` (already checked) and run on."""
        return self.close_step(inst, tx, Ok(encode(value)))

    def service(
        self,
        inst: Instance,
        tx: Any,
        request: Request[Any],
        raw: msgspec.Raw,
        handler: Handler | Effect,
        batch: list[FlowEvent],
        *,
        seq: int,
        attempt: int,
        opened: bool,
    ) -> Call | None:
        """Service a request (again, if `opened`): at once, or as an outside effect later."""
        now = self.clock()
        if isinstance(handler, Effect):
            pending = StepPending(
                seq=seq,
                request=raw,
                mode="call",
                status="running",
                due=now + self.call_lease,
                attempts=attempt - 1,
            )
            self._open(inst, batch, pending, request)
            return Call(inst.flow_id, seq, request, handler.fn, attempt)
        ctx = StepContext(inst.flow_id, seq, now, attempt, tx)
        outcome = self.call(handler, request, ctx)
        self.settle(inst, batch, request, raw, outcome, seq=seq, attempt=attempt, opened=opened)
        return None

    def call(self, handler: Handler, request: Request[Any], ctx: StepContext) -> Outcome:
        """Run a handler; a `StepFailed` becomes a `Failed` outcome, anything else propagates."""
        try:
            value = handler(request, ctx)
        except StepFailed as failure:
            return Failed(
                kind=failure.kind,
                message=failure.message,
                retryable=failure.retryable,
                attempts=ctx.attempt,
            )
        return Ok(self.checked(ctx.flow_id, request, value))

    def settle(
        self,
        inst: Instance,
        batch: list[FlowEvent],
        request: Request[Any],
        raw: msgspec.Raw,
        outcome: Outcome,
        *,
        seq: int,
        attempt: int,
        opened: bool,
    ) -> None:
        """Record an outcome, or schedule a durable retry when the policy allows one."""
        policy = request.retry
        retry = isinstance(outcome, Failed) and outcome.retryable and policy is not None
        if retry and attempt < policy.max_attempts:  # type: ignore[union-attr]
            pending = StepPending(
                seq=seq,
                request=raw,
                mode="retry",
                status="waiting",
                due=self.clock() + policy.delay(attempt),  # type: ignore[union-attr]
                attempts=attempt,
                error=outcome,  # type: ignore[arg-type]
            )
            self._open(inst, batch, pending, request)
            return
        if opened:
            batch.append(StepAnswered(seq=seq, outcome=outcome))
            inst.pending = inst.pending_request = None
        else:
            batch.append(StepDone(seq=seq, request=raw, outcome=outcome))
        inst.answer(request, outcome)

    def checked(self, flow_id: str, request: Request[Any], value: Any) -> msgspec.Raw:
        """`value` encoded, after proving it decodes as the response `request` declares."""
        try:
            raw = encode(value)
            decode_response(request, raw)
        except (TypeError, msgspec.EncodeError, msgspec.ValidationError) as exc:
            declared = response_type(type(request))
            expected = getattr(declared, "__name__", str(declared))
            raise WrongResponse(flow_id, expected, f"{type(value).__name__} ({exc})") from None
        return raw

    def validated(self, flow_id: str, request: Request[Any], index: int, response: Any) -> Any:
        """The checked answer for option `index` of the awaited request (a `Won` in a race)."""
        if isinstance(request, FirstOf):
            option = request.options[index]
            return Won(index, tag_of(option), self.checked(flow_id, option, response))
        return self.checked(flow_id, request, response)

    def _step(
        self, inst: Instance, tx: Any, request: Request[Any], batch: list[FlowEvent]
    ) -> Call | None:
        seq, raw = inst.seq, encode(request)
        inst.seq += 1
        if isinstance(request, (Now, NewId)):
            value = self.clock() if isinstance(request, Now) else derived_id(inst.flow_id, seq)
            self.settle(
                inst, batch, request, raw, Ok(encode(value)), seq=seq, attempt=1, opened=False
            )
            return None
        handler = self.handlers.get(type(request))
        if handler is None or isinstance(request, (Timer, FirstOf)):
            self._wait(inst, batch, seq, request, raw)
            return None
        return self.service(
            inst, tx, request, raw, handler, batch, seq=seq, attempt=1, opened=False
        )

    def _end(
        self,
        inst: Instance,
        batch: list[FlowEvent],
        *,
        result: Any = None,
        error: Exception | None = None,
    ) -> None:
        status: Status
        if error is None:
            status = "cancelled" if inst.cancelled else "completed"
            inst.ended = FlowEnded(status=status, result=encode(result))
        else:
            kind = error.kind if isinstance(error, StepFailed) else type(error).__name__
            message = error.message if isinstance(error, StepFailed) else str(error)
            status = "cancelled" if inst.cancelled or isinstance(error, Cancelled) else "failed"
            inst.ended = FlowEnded(status=status, error=Failed(kind=kind, message=message))
        inst.status = inst.ended.status
        batch.append(inst.ended)

    def _open(
        self, inst: Instance, batch: list[FlowEvent], pending: StepPending, request: Request[Any]
    ) -> None:
        batch.append(pending)
        inst.pending, inst.pending_request, inst.status = pending, request, pending.status

    def _wait(
        self,
        inst: Instance,
        batch: list[FlowEvent],
        seq: int,
        request: Request[Any],
        raw: msgspec.Raw,
    ) -> None:
        now = self.clock()
        options = request.options if isinstance(request, FirstOf) else (request,)
        dues = [option.due(now) for option in options if isinstance(option, Timer)]
        pending = StepPending(
            seq=seq,
            request=raw,
            mode="await",
            status="waiting",
            awaits=[tag_of(o) for o in options],
            due=min(dues, default=None),
        )
        self._open(inst, batch, pending, request)


def timer_value(request: Request[Any], due: datetime) -> Any:
    """The answer a fired timer gives: the due instant, or a `Won` naming the race's timer."""
    if isinstance(request, FirstOf):
        return Won(first_timer(request.options, due), "Timer", encode(due))
    return encode(due)


def first_timer(options: tuple[Request[Any], ...], due: datetime) -> int:
    """The index of the race's timer that fell due first (`due` is the earliest due instant).

    A timer `at` that instant wins; otherwise the shortest `seconds` timer, since all of a
    race's duration timers started together. Ties go to the earlier option.
    """
    timers = [(i, o) for i, o in enumerate(options) if isinstance(o, Timer)]
    for index, timer in timers:
        if timer.at is not None and timer.at == due:
            return index
    durations = [(t.seconds or 0.0, i) for i, t in timers if t.at is None]
    return min(durations)[1] if durations else timers[0][0]


def derived_id(flow_id: str, seq: int) -> str:
    """The answer to `NewId` at step `seq`: derived, so replay sees the same id."""
    return hashlib.sha256(f"{flow_id}:{seq}".encode()).hexdigest()[:32]
