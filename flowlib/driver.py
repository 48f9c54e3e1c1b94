"""The engine: drives flow instances against a `Store` and a map of request handlers."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from flowlib import transfer
from flowlib.errors import (
    Cancelled,
    FlowError,
    FlowNotFound,
    NondeterminismError,
    StepFailed,
    WrongResponse,
)
from flowlib.flow import REGISTRY, Registry
from flowlib.log import (
    AnyFlowEvent,
    CancelledBy,
    Failed,
    FlowEnded,
    FlowEvent,
    FlowStarted,
    FlowStuck,
    Ok,
    Outcome,
    StepAnswered,
    StepDone,
    StepPending,
    advance,
    stream_of,
)
from flowlib.replay import Instance, decode_response, encode, replay
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


class FlowState(msgspec.Struct, frozen=True, kw_only=True):
    """Where an instance stands."""

    flow_id: str
    name: str
    version: int
    status: str
    awaits: list[str] = []
    due: datetime | None = None


class Resumption(msgspec.Struct, frozen=True, kw_only=True):
    """The answer to `resume`: whether the response was taken, and the status after it."""

    flow_id: str
    resumed: bool
    status: str
    reason: str = ""


class Fired(msgspec.Struct, frozen=True, kw_only=True):
    """One due timer, retry or expired call lease that `fire_due_timers` acted on."""

    flow_id: str
    mode: str
    status: str
    error: str = ""


@dataclass
class _Call:
    flow_id: str
    seq: int
    request: Request[Any]
    handler: Handler
    attempt: int


class Engine:
    """Starts, resumes, cancels and times out flow instances; everything is in the store."""

    def __init__(
        self,
        store: Store,
        handlers: Mapping[type[Request[Any]], Handler | Effect] | None = None,
        *,
        clock: Clock = utc_now,
        registry: Registry = REGISTRY,
        call_lease: timedelta = timedelta(seconds=30),
    ) -> None:
        self.store = store
        self.handlers = dict(handlers or {})
        self.clock = clock
        self.registry = registry
        self.call_lease = call_lease

    # -- public operations -------------------------------------------------------------

    def start(
        self,
        name: str,
        *args: Any,
        flow_id: str | None = None,
        version: int | None = None,
        defer_effects: bool = False,
    ) -> FlowState:
        """Start flow `name` (newest version unless given); an existing `flow_id` is left as is."""
        definition = self.registry.get(name, version)
        flow_id = flow_id or secrets.token_hex(12)
        with self.store.transaction() as tx:
            if self.store.version(stream_of(flow_id)):
                return self._state(flow_id)
            started = FlowStarted(
                flow_id=flow_id,
                name=definition.name,
                version=definition.version,
                args=encode(list(args)),
                started_at=self.clock(),
            )
            inst = Instance(flow_id, definition, started)
            try:
                calls = self._drive(inst, tx, [started])
            finally:
                inst.discard()  # a live copy must never run its `finally` on garbage collection
        return self._after(inst, calls, defer_effects)

    def resume(
        self,
        flow_id: str,
        response: Any,
        *,
        awaiting: type[Request[Any]],
        defer_effects: bool = False,
    ) -> Resumption:
        """Answer the `awaiting` request the flow waits on; "not waiting" changes nothing."""
        if not (isinstance(awaiting, type) and issubclass(awaiting, Request)):
            raise TypeError(f"awaiting must be a Request subclass, not {awaiting!r}")
        with self._operation(flow_id) as (inst, tx):
            option = self._awaited_option(inst, awaiting)
            if option is None:
                return self._not_waiting(inst, awaiting)
            value = self._validated(flow_id, inst.pending_request, option, response)  # type: ignore[arg-type]
            calls = self._answer(inst, tx, value)
        status = self._after(inst, calls, defer_effects).status
        return Resumption(flow_id=flow_id, resumed=True, status=status)

    def cancel(self, flow_id: str, reason: str = "") -> FlowState:
        """Throw `Cancelled(reason)` into the flow; its compensation steps are serviced."""
        with self._operation(flow_id) as (inst, tx):
            if inst.ended is not None or inst.pending is None:
                return self._state(flow_id)
            calls = self._close_step(inst, tx, CancelledBy(reason))
        return self._after(inst, calls)

    def fire_due_timers(
        self, now: datetime | None = None, *, limit: int | None = None
    ) -> list[Fired]:
        """Fire every timer, retry and expired call lease due at `now` (default: the clock)."""
        now = now or self.clock()
        fired: list[Fired] = []
        for row in self.store.flows(due_before=now, limit=limit):
            try:
                fired.extend(self._fire(row.flow_id, now))
            except NondeterminismError as exc:
                fired.append(
                    Fired(flow_id=row.flow_id, mode="replay", status="stuck", error=str(exc))
                )
            except Exception as exc:  # one broken flow must not starve the others' timers
                error = f"{type(exc).__name__}: {exc}"
                status = self._state(row.flow_id).status
                fired.append(Fired(flow_id=row.flow_id, mode="error", status=status, error=error))
        return fired

    def run_effects(self, flow_id: str) -> FlowState:
        """Perform the outside effect the flow has open now, if any, and record its answer.

        For callers that started or resumed a flow inside their own transaction with
        `defer_effects=True`: call this once that transaction has committed.
        """
        with self._operation(flow_id) as (inst, _tx):
            pending, request = inst.pending, inst.pending_request
            handler = self.handlers.get(type(request)) if request is not None else None
            if pending is None or pending.mode != "call" or not isinstance(handler, Effect):
                return self._after(inst, [])
            call = _Call(flow_id, pending.seq, request, handler.fn, pending.attempts + 1)  # type: ignore[arg-type]
        return self._after(inst, [call])

    def status(self, flow_id: str) -> FlowState:
        """The instance's status, read from its log (no replay)."""
        return self._state(flow_id)

    def result(self, flow_id: str) -> Any:
        """The finished flow's return value; raises `StepFailed` if it failed or was cancelled."""
        events = self._events(flow_id)
        ended = events[-1]
        if not isinstance(ended, FlowEnded):
            raise FlowError(
                f"flow {flow_id!r} has not finished (it is {self._state(flow_id).status})"
            )
        if ended.error is not None:
            if ended.status == "cancelled" and ended.error.kind == "cancelled":
                raise Cancelled(ended.error.message)
            raise StepFailed(ended.error.kind, ended.error.message)
        started = events[0]
        assert isinstance(started, FlowStarted)
        definition = self.registry.get(started.name, started.version)
        return msgspec.json.decode(ended.result, type=definition.result_type)

    def flows(self, status: str | None = None) -> list[FlowState]:
        """Index rows of every instance (or those with `status`)."""
        return [
            FlowState(
                flow_id=r.flow_id,
                name=r.name,
                version=r.version,
                status=r.status,
                awaits=list(r.awaits),
                due=r.due,
            )  # type: ignore[attr-defined]
            for r in self.store.flows(status=status)
        ]

    def export(self, *, status: str | None = None, flow_ids: list[str] | None = None) -> bytes:
        """One document holding the chosen instances' logs (all, by status, or by id)."""
        if flow_ids is None:
            flow_ids = [row.flow_id for row in self.store.flows(status=status)]
        return transfer.export_flows(self.store, flow_ids)

    def import_(self, data: bytes) -> transfer.ImportReport:
        """Check, dry-run and write an export document; all or nothing."""
        return transfer.import_flows(self.store, self.registry, data)

    def check_replay(self, flow_ids: list[str] | None = None) -> list[transfer.Divergence]:
        """The upgrade gate: replay every unfinished instance against the code now registered."""
        ids = transfer.unfinished(self.store) if flow_ids is None else flow_ids
        return transfer.check_replay(self.store, self.registry, ids)

    def log(self, flow_id: str) -> list[AnyFlowEvent]:
        """The instance's replay log, as stored."""
        return self._events(flow_id)

    # -- loading and guarding ----------------------------------------------------------

    def _events(self, flow_id: str) -> list[AnyFlowEvent]:
        events = self.store.read(stream_of(flow_id), AnyFlowEvent)
        if not events:
            raise FlowNotFound(flow_id)
        return events

    def _state(self, flow_id: str) -> FlowState:
        summary = None
        for event in self._events(flow_id):
            summary = advance(summary, flow_id, event)
        assert summary is not None  # _events guarantees a FlowStarted head
        fields = msgspec.structs.asdict(summary)
        fields["awaits"] = list(summary.awaits)  # never hand out the logged event's own list
        return FlowState(**fields)

    def _after(self, inst: Instance, calls: list[_Call], defer: bool = False) -> FlowState:
        """Run the outside effects an operation left, then say where the flow stands."""
        if calls and not defer:
            self._run_calls(calls)
            return self._state(inst.flow_id)
        pending = inst.pending
        return FlowState(
            flow_id=inst.flow_id,
            name=inst.definition.name,
            version=inst.definition.version,
            status=inst.status,
            awaits=list(pending.awaits) if pending else [],
            due=pending.due if pending else None,
        )

    def load(self, flow_id: str) -> Instance:
        """Rebuild the live instance from its log (raises on divergence; writes nothing)."""
        return replay(flow_id, self._events(flow_id), self.registry)

    @contextmanager
    def _operation(self, flow_id: str) -> Iterator[tuple[Instance, Any]]:
        """A transaction with the rebuilt instance; a divergence marks the flow stuck."""
        inst: Instance | None = None
        try:
            with self.store.transaction() as tx:
                inst = self.load(flow_id)
                yield inst, tx
        except NondeterminismError as exc:
            self._mark_stuck(exc)
            raise
        finally:
            if inst is not None:
                inst.discard()

    def _mark_stuck(self, exc: NondeterminismError) -> None:
        stream = stream_of(exc.flow_id)
        with self.store.transaction():
            events = self.store.read(stream, AnyFlowEvent)
            last = events[-1] if events else None
            if isinstance(last, FlowStuck) and last.seq == exc.step:
                return
            summary = None
            for event in events:
                summary = advance(summary, exc.flow_id, event)
            stuck = FlowStuck(
                seq=exc.step,
                logged=exc.logged,
                yielded=exc.yielded,
                awaits=list(summary.awaits) if summary else [],
                due=summary.due if summary else None,
            )
            self.store.append(stream, [stuck], expected_version=len(events))

    # -- driving -----------------------------------------------------------------------

    def _commit(self, inst: Instance, batch: list[FlowEvent]) -> None:
        if batch:
            stream = stream_of(inst.flow_id)
            inst.version = self.store.append(stream, batch, expected_version=inst.version)

    def _drive(self, inst: Instance, tx: Any, batch: list[FlowEvent]) -> list[_Call]:
        """Run the generator until it waits, needs an outside effect, or ends; then append."""
        calls: list[_Call] = []
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
        self._commit(inst, batch)
        return calls

    def _end(
        self,
        inst: Instance,
        batch: list[FlowEvent],
        *,
        result: Any = None,
        error: Exception | None = None,
    ) -> None:
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

    def _step(
        self, inst: Instance, tx: Any, request: Request[Any], batch: list[FlowEvent]
    ) -> _Call | None:
        seq, raw = inst.seq, encode(request)
        inst.seq += 1
        if isinstance(request, (Now, NewId)):
            value = self.clock() if isinstance(request, Now) else _derived_id(inst.flow_id, seq)
            self._done(inst, batch, seq, request, raw, Ok(encode(value)))
            return None
        handler = self.handlers.get(type(request))
        if handler is None or isinstance(request, (Timer, FirstOf)):
            self._wait(inst, batch, seq, request, raw)
            return None
        return self._service(inst, tx, seq, request, raw, handler, batch, attempt=1)

    def _service(
        self,
        inst: Instance,
        tx: Any,
        seq: int,
        request: Request[Any],
        raw: msgspec.Raw,
        handler: Handler | Effect,
        batch: list[FlowEvent],
        *,
        attempt: int,
    ) -> _Call | None:
        now = self.clock()
        if isinstance(handler, Effect):
            self._open(
                inst,
                batch,
                StepPending(
                    seq=seq,
                    request=raw,
                    mode="call",
                    status="running",
                    due=now + self.call_lease,
                    attempts=attempt - 1,
                ),
                request,
            )
            return _Call(inst.flow_id, seq, request, handler.fn, attempt)
        outcome = self._call(
            handler, request, StepContext(inst.flow_id, seq, now, attempt, tx), attempt
        )
        self._settle(inst, batch, seq, request, raw, outcome, attempt, opened=False)
        return None

    def _call(
        self, handler: Handler, request: Request[Any], ctx: StepContext, attempt: int
    ) -> Outcome:
        try:
            value = handler(request, ctx)
        except StepFailed as failure:
            return Failed(
                kind=failure.kind,
                message=failure.message,
                retryable=failure.retryable,
                attempts=attempt,
            )
        return Ok(self._checked(ctx.flow_id, request, value))

    def _settle(
        self,
        inst: Instance,
        batch: list[FlowEvent],
        seq: int,
        request: Request[Any],
        raw: msgspec.Raw,
        outcome: Outcome,
        attempt: int,
        *,
        opened: bool,
    ) -> None:
        """Record an outcome, or schedule a durable retry when the policy allows one."""
        policy = request.retry
        if (
            isinstance(outcome, Failed)
            and outcome.retryable
            and policy
            and attempt < policy.max_attempts
        ):
            due = self.clock() + policy.delay(attempt)
            pending = StepPending(
                seq=seq,
                request=raw,
                mode="retry",
                status="waiting",
                due=due,
                attempts=attempt,
                error=outcome,
            )
            self._open(inst, batch, pending, request)
        elif opened:
            batch.append(StepAnswered(seq=seq, outcome=outcome))
            inst.pending = inst.pending_request = None
            inst.answer(request, outcome)
        else:
            self._done(inst, batch, seq, request, raw, outcome)

    def _done(
        self,
        inst: Instance,
        batch: list[FlowEvent],
        seq: int,
        request: Request[Any],
        raw: msgspec.Raw,
        outcome: Outcome,
    ) -> None:
        batch.append(StepDone(seq=seq, request=raw, outcome=outcome))
        inst.answer(request, outcome)

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

    def _close_step(self, inst: Instance, tx: Any, outcome: Outcome) -> list[_Call]:
        assert inst.pending is not None and inst.pending_request is not None
        batch: list[FlowEvent] = [StepAnswered(seq=inst.pending.seq, outcome=outcome)]
        inst.answer(inst.pending_request, outcome)
        inst.pending = inst.pending_request = None
        return self._drive(inst, tx, batch)

    def _answer(self, inst: Instance, tx: Any, value: Any) -> list[_Call]:
        return self._close_step(inst, tx, Ok(encode(value)))

    # -- awaited requests ----------------------------------------------------------------

    def _awaited_option(self, inst: Instance, awaiting: type[Request[Any]]) -> int | None:
        pending, request = inst.pending, inst.pending_request
        if inst.ended is not None or pending is None or pending.mode != "await" or request is None:
            return None
        options = request.options if isinstance(request, FirstOf) else (request,)
        for index, option in enumerate(options):
            if type(option) is awaiting:
                return index
        return None

    def _not_waiting(self, inst: Instance, awaiting: type[Request[Any]]) -> Resumption:
        waits = (
            ", ".join(inst.pending.awaits)
            if inst.pending and inst.pending.mode == "await"
            else "nothing"
        )
        reason = f"not waiting on {tag_of(awaiting)} (it is {inst.status}, waiting on {waits})"
        return Resumption(flow_id=inst.flow_id, resumed=False, status=inst.status, reason=reason)

    def _validated(self, flow_id: str, request: Request[Any], index: int, response: Any) -> Any:
        if isinstance(request, FirstOf):
            option = request.options[index]
            return Won(index, tag_of(option), self._checked(flow_id, option, response))
        return self._checked(flow_id, request, response)

    def _checked(self, flow_id: str, request: Request[Any], value: Any) -> msgspec.Raw:
        """`value` encoded, after proving it decodes as the response `request` declares."""
        try:
            raw = encode(value)
            decode_response(request, raw)
        except (TypeError, msgspec.EncodeError, msgspec.ValidationError) as exc:
            expected = getattr(
                response_type(type(request)), "__name__", str(response_type(type(request)))
            )
            raise WrongResponse(flow_id, expected, f"{type(value).__name__} ({exc})") from None
        return raw

    # -- timers, retries and outside effects --------------------------------------------

    def _fire(self, flow_id: str, now: datetime) -> list[Fired]:
        with self._operation(flow_id) as (inst, tx):
            pending, request = inst.pending, inst.pending_request
            if inst.ended is not None or pending is None or request is None:
                return []
            if pending.due is None or pending.due > now:
                return []
            mode = pending.mode
            if mode == "await":
                calls = self._answer(inst, tx, self._timer_value(request, pending.due))
            else:
                handler = self.handlers.get(type(request))
                if handler is None:
                    raise FlowError(
                        f"flow {flow_id!r} retries {tag_of(request)}, which has no handler"
                    )
                batch: list[FlowEvent] = []
                call = self._service_again(
                    inst, tx, request, handler, batch, attempt=pending.attempts + 1
                )
                calls = self._drive(inst, tx, batch) + ([call] if call else [])
        self._run_calls(calls)
        return [Fired(flow_id=flow_id, mode=mode, status=self._state(flow_id).status)]

    def _timer_value(self, request: Request[Any], due: datetime) -> Any:
        if isinstance(request, FirstOf):
            return Won(_first_timer(request.options, due), "Timer", encode(due))
        return encode(due)

    def _service_again(
        self,
        inst: Instance,
        tx: Any,
        request: Request[Any],
        handler: Handler | Effect,
        batch: list[FlowEvent],
        *,
        attempt: int,
    ) -> _Call | None:
        assert inst.pending is not None
        seq, raw = inst.pending.seq, inst.pending.request
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
            return _Call(inst.flow_id, seq, request, handler.fn, attempt)
        outcome = self._call(
            handler, request, StepContext(inst.flow_id, seq, now, attempt, tx), attempt
        )
        self._settle(inst, batch, seq, request, raw, outcome, attempt, opened=True)
        return None

    def _run_calls(self, calls: list[_Call]) -> None:
        """Perform outside effects with no transaction open, then record each answer."""
        while calls:
            call = calls.pop(0)
            ctx = StepContext(call.flow_id, call.seq, self.clock(), call.attempt, None)
            outcome = self._call(call.handler, call.request, ctx, call.attempt)
            calls.extend(self._record_call(call, outcome))

    def _record_call(self, call: _Call, outcome: Outcome) -> list[_Call]:
        with self._operation(call.flow_id) as (inst, tx):
            pending = inst.pending
            if pending is None or pending.seq != call.seq or pending.mode != "call":
                return []  # answered meanwhile (a recovery or a cancel): that record stands
            batch: list[FlowEvent] = []
            raw = pending.request
            self._settle(
                inst, batch, call.seq, call.request, raw, outcome, call.attempt, opened=True
            )
            return self._drive(inst, tx, batch)


def _first_timer(options: tuple[Request[Any], ...], due: datetime) -> int:
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


def _derived_id(flow_id: str, seq: int) -> str:
    return hashlib.sha256(f"{flow_id}:{seq}".encode()).hexdigest()[:32]
