"""The engine: starts, resumes, cancels and times out flow instances kept in a `Store`.

Every operation takes the live instance (from the `InstanceCache` if it is current there,
else rebuilt from its log) inside one store transaction, lets the `Stepper` run it
forward, and commits; outside effects run after the commit, with no transaction open,
and their answers are recorded in a transaction of their own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import msgspec

from flowlib import transfer
from flowlib.cache import DEFAULT_SIZE, InstanceCache
from flowlib.errors import (
    Cancelled,
    FlowError,
    FlowNotFound,
    NondeterminismError,
    RetireRefused,
    StepFailed,
)
from flowlib.flow import REGISTRY, Registry
from flowlib.log import (
    FINISHED,
    AnyFlowEvent,
    CancelledBy,
    Failed,
    FlowEnded,
    FlowEvent,
    FlowRecovered,
    FlowStarted,
    FlowStuck,
    FlowSummary,
    Outcome,
    advance,
    stream_of,
)
from flowlib.replay import Instance, encode, finished, replay
from flowlib.requests import FirstOf, Request, tag_of
from flowlib.steps import (
    Call,
    Clock,
    Effect,
    Handler,
    StepContext,
    Stepper,
    effect,
    timer_value,
    utc_now,
)
from flowlib.store import Store, due_flows

__all__ = ["Clock", "Effect", "Engine", "Fired", "FlowState", "Handler", "Resumption"]
__all__ += ["StepContext", "effect", "utc_now"]

TIMER_LEASE = timedelta(seconds=30)
"""How long a claimed due flow is another engine's to skip: longer than firing a batch."""

FlowState = FlowSummary
"""Where an instance stands: its index row (name, version, status, awaits, due)."""


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
        cache_size: int = DEFAULT_SIZE,
    ) -> None:
        """`cache_size` live instances are kept between steps (0: replay every step).

        Only with a store that has `after_commit(fn, on_rollback)`, which tells when a
        step's transaction has committed; without it every step replays.
        """
        self.store = store
        self.registry = registry
        self.steps = Stepper(store, handlers or {}, clock, call_lease)
        self.cache = InstanceCache(cache_size)
        self._after_commit = getattr(store, "after_commit", None)
        self.timer_owner = f"engine-{secrets.token_hex(6)}"
        """Whose leases this engine's timer claims are (set it to name the process)."""

    @property
    def clock(self) -> Clock:
        """The engine's clock (timers, `Now`, leases)."""
        return self.steps.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self.steps.clock = clock

    @property
    def call_lease(self) -> timedelta:
        """How long an outside call may run before a timers run repeats it."""
        return self.steps.call_lease

    @call_lease.setter
    def call_lease(self, lease: timedelta) -> None:
        self.steps.call_lease = lease

    @property
    def handlers(self) -> dict[type[Request[Any]], Handler | Effect]:
        """The handler map: request type -> handler (or `Effect`)."""
        return self.steps.handlers

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
        flow_id = flow_id or secrets.token_hex(12)
        started = self.start_new(
            name, *args, flow_id=flow_id, version=version, defer_effects=defer_effects
        )
        return self.status(flow_id) if started is None else started

    def start_new(
        self,
        name: str,
        *args: Any,
        flow_id: str,
        version: int | None = None,
        defer_effects: bool = False,
    ) -> FlowState | None:
        """`start`, but None (and nothing done) if flow `flow_id` exists already.

        A caller that must know whether this call started it (to compare the arguments of
        one it did not) learns it without reading the flow's log.
        """
        definition = self.registry.get(name, version)
        with self.store.transaction() as tx:
            if self.store.version(stream_of(flow_id)):
                return None
            started = FlowStarted(
                flow_id=flow_id,
                name=definition.name,
                version=definition.version,
                args=encode(list(args)),
                started_at=self.clock(),
                status="running",
            )
            inst = Instance(flow_id, definition, started)
            try:
                calls = self.steps.drive(inst, tx, [started])
            except BaseException:
                inst.discard()  # a live copy must never run its `finally` on garbage collection
                raise
        self._keep(inst)
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
            option = _awaited_option(inst, awaiting)
            if option is None:
                return _not_waiting(inst, awaiting)
            value = self.steps.validated(flow_id, inst.pending_request, option, response)  # type: ignore[arg-type]
            calls = self.steps.answer(inst, tx, value)
        status = self._after(inst, calls, defer_effects).status
        return Resumption(flow_id=flow_id, resumed=True, status=status)

    def cancel(self, flow_id: str, reason: str = "", *, defer_effects: bool = False) -> FlowState:
        """Throw `Cancelled(reason)` into the flow; its compensation steps are serviced.

        With `defer_effects`, an outside effect its compensation reaches is left for
        `run_effects` (call it once the caller's transaction has committed).
        """
        with self._operation(flow_id) as (inst, tx):
            if inst.ended is not None or inst.pending is None:
                return self._state(flow_id)
            calls = self.steps.close_step(inst, tx, CancelledBy(reason))
        return self._after(inst, calls, defer_effects)

    def retire(self, flow_id: str, *, expected_log: bytes, reason: str = "moved") -> bool:
        """End an instance here, without running it, because it continues in another store.

        The last step of a move (export, import elsewhere, retire here): `expected_log` is
        the instance's log as exported (`transfer.encode_log`), and the retirement is refused
        with `RetireRefused` if the log changed since, so no step taken here after the export
        is lost. Returns whether it retired the instance now; a finished one (or one retired
        before) is left as it is.
        """
        stream = stream_of(flow_id)
        with self.store.transaction():
            events = self._events(flow_id)
            last = events[-1]
            if isinstance(last, FlowEnded) and last.status == "moved":
                events = events[:-1]  # retired before: the same check, and no change
            if transfer.encode_log(events) != expected_log:
                raise RetireRefused(flow_id, "its log changed here since the export")
            summary = _summary(flow_id, events)
            if len(events) < self.store.version(stream) or summary is None:
                return False
            if summary.status in FINISHED:
                return False
            moved = FlowEnded(status="moved", error=Failed(kind="moved", message=reason))
            self.store.append(stream, [moved], expected_version=len(events))
        return True

    def recover(self, flow_id: str) -> FlowState:
        """Take back a stuck instance whose log replays against the code now registered.

        It then waits (or runs on) exactly where it was; one that still diverges raises
        `NondeterminismError` (and stays stuck). An instance that is not stuck is left as is.
        """
        with self._operation(flow_id) as (inst, tx):
            if self._state(flow_id).status != "stuck":
                return self._after(inst, [])
            pending = inst.pending
            recovered = FlowRecovered(
                status="running" if pending is None else pending.status,
                awaits=list(pending.awaits) if pending else [],
                due=pending.due if pending else None,
            )
            calls = self.steps.drive(inst, tx, [recovered])
        return self._after(inst, calls)

    def retire_moved(
        self, document: bytes, *, reason: str = "moved", receipt: str | None = None
    ) -> list[str]:
        """Retire every instance of an export document (all in one transaction); the ids retired.

        With `receipt` (what `import_` reported where the document was imported), a receipt
        for another document is refused (`RetireRefused`, nothing written).
        """
        parsed = transfer.decode_document(document)
        if receipt is not None and receipt != transfer.receipt(parsed):
            raise RetireRefused("the document", "the receipt is not from importing this document")
        flows = parsed.flows
        with self.store.transaction():
            return [
                flow.flow_id
                for flow in flows
                if self.retire(
                    flow.flow_id, expected_log=transfer.encode_log(flow.events), reason=reason
                )
            ]

    def fire_due_timers(
        self,
        now: datetime | None = None,
        *,
        limit: int | None = None,
        lease: timedelta = TIMER_LEASE,
        owner: str | None = None,
    ) -> list[Fired]:
        """Fire every timer, retry and expired call lease due at `now` (default: the clock).

        On a store that leases due flows (`ClaimingStore`), each is first claimed for
        `lease` under `owner` (default: `timer_owner`), so engines sharing the store fire
        disjoint sets rather than all trying every flow; see `store.due_flows`.
        """
        now = now or self.clock()
        fired: list[Fired] = []
        owner = owner or self.timer_owner
        with due_flows(self.store, now, limit=limit, lease=lease, owner=owner) as rows:
            for row in rows:
                fired.extend(self._fire_reported(row.flow_id, now))
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
            call = Call(flow_id, pending.seq, request, handler.fn, pending.attempts + 1)  # type: ignore[arg-type]
        return self._after(inst, [call])

    def status(self, flow_id: str) -> FlowState:
        """The instance's status, read from its log (no replay)."""
        return self._state(flow_id)

    def result(self, flow_id: str) -> Any:
        """The finished flow's return value; raises `StepFailed` if it failed or was cancelled."""
        events = self._events(flow_id)
        ended, started = finished(events), events[0]
        if ended is None or not isinstance(started, FlowStarted):
            raise FlowError(
                f"flow {flow_id!r} has not finished (it is {self._state(flow_id).status})"
            )
        if ended.error is not None:
            if ended.status == "cancelled" and ended.error.kind == "cancelled":
                raise Cancelled(ended.error.message)
            raise StepFailed(ended.error.kind, ended.error.message)
        definition = self.registry.get(started.name, started.version)
        return msgspec.json.decode(ended.result, type=definition.result_type)

    def flows(self, status: str | None = None) -> list[FlowState]:
        """Index rows of every instance (or those with `status`)."""
        return [
            FlowState(
                flow_id=r.flow_id,
                name=r.name,  # type: ignore[attr-defined]
                version=r.version,  # type: ignore[attr-defined]
                status=r.status,
                awaits=list(r.awaits),  # type: ignore[attr-defined]
                due=r.due,
            )
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

    def load(self, flow_id: str) -> Instance:
        """Rebuild the live instance from its log (raises on divergence; writes nothing)."""
        return replay(flow_id, self._events(flow_id), self.registry)

    # -- loading and guarding ----------------------------------------------------------

    def _events(self, flow_id: str) -> list[AnyFlowEvent]:
        events = self.store.read(stream_of(flow_id), AnyFlowEvent)
        if not events:
            raise FlowNotFound(flow_id)
        return events

    def _state(self, flow_id: str) -> FlowState:
        summary = _summary(flow_id, self._events(flow_id))
        if summary is None:
            raise FlowError(f"stream of flow {flow_id!r} does not begin with FlowStarted")
        return summary

    def _after(self, inst: Instance, calls: list[Call], defer: bool = False) -> FlowState:
        """Run the outside effects an operation left, then say where the flow stands."""
        if calls and not defer:
            return self._run_calls(calls) or self._state(inst.flow_id)
        return _state_of(inst)

    @contextmanager
    def _operation(self, flow_id: str) -> Iterator[tuple[Instance, Any]]:
        """A transaction with the live instance; a divergence marks the flow stuck."""
        inst: Instance | None = None
        try:
            with self.store.transaction() as tx:
                inst = self._live(flow_id)
                yield inst, tx
        except BaseException as exc:
            if inst is not None:
                inst.discard()
            if isinstance(exc, NondeterminismError):
                self._mark_stuck(exc)
            raise
        self._keep(inst)

    def _live(self, flow_id: str) -> Instance:
        """The cached instance if it is current (checked in this transaction), else replayed."""
        if self._after_commit is not None:
            stream = stream_of(flow_id)
            inst = self.cache.take(flow_id, lambda: self.store.version(stream), self.registry)
            if inst is not None:
                return inst
        return self.load(flow_id)

    def _keep(self, inst: Instance) -> None:
        """Cache the instance once the transaction it stepped in commits; discard it if not."""
        if self._after_commit is None:
            inst.discard()
            return
        self._after_commit(lambda: self.cache.put(inst), inst.discard)

    def _mark_stuck(self, exc: NondeterminismError) -> None:
        """Record the divergence once; the flow keeps what it awaits and when it is due."""
        stream = stream_of(exc.flow_id)
        with self.store.transaction():
            events = self.store.read(stream, AnyFlowEvent)
            last = events[-1] if events else None
            if (isinstance(last, FlowStuck) and last.seq == exc.step) or finished(events):
                return  # marked before, or finished: a finished flow's outcome is final
            summary = _summary(exc.flow_id, events)
            stuck = FlowStuck(
                seq=exc.step,
                logged=exc.logged,
                yielded=exc.yielded,
                awaits=summary.awaits if summary else [],
                due=summary.due if summary else None,
            )
            self.store.append(stream, [stuck], expected_version=len(events))

    # -- timers, retries and outside effects --------------------------------------------

    def _fire_reported(self, flow_id: str, now: datetime) -> list[Fired]:
        """`_fire`, with a failure reported rather than raised."""
        try:
            return self._fire(flow_id, now)
        except NondeterminismError as exc:
            return [Fired(flow_id=flow_id, mode="replay", status="stuck", error=str(exc))]
        except Exception as exc:  # one broken flow must not starve the others' timers
            error = f"{type(exc).__name__}: {exc}"
            status = self._state(flow_id).status
            return [Fired(flow_id=flow_id, mode="error", status=status, error=error)]

    def _fire(self, flow_id: str, now: datetime) -> list[Fired]:
        with self._operation(flow_id) as (inst, tx):
            pending, request = inst.pending, inst.pending_request
            if inst.ended is not None or pending is None or request is None:
                return []
            if pending.due is None or pending.due > now:
                return []
            if pending.mode == "await":
                calls = self.steps.answer(inst, tx, timer_value(request, pending.due))
            else:
                calls = self._service_again(inst, tx, request, pending.seq, pending.attempts + 1)
        status = self._after(inst, calls).status
        return [Fired(flow_id=flow_id, mode=pending.mode, status=status)]

    def _service_again(
        self, inst: Instance, tx: Any, request: Request[Any], seq: int, attempt: int
    ) -> list[Call]:
        """A due retry, or a call whose lease ran out (its process died): service it again."""
        handler = self.handlers.get(type(request))
        if handler is None:
            raise FlowError(
                f"flow {inst.flow_id!r} retries {tag_of(request)}, which has no handler"
            )
        raw = inst.pending.request  # type: ignore[union-attr]
        batch: list[FlowEvent] = []
        call = self.steps.service(
            inst, tx, request, raw, handler, batch, seq=seq, attempt=attempt, opened=True
        )
        return self.steps.drive(inst, tx, batch) + ([call] if call else [])

    def _run_calls(self, calls: list[Call]) -> FlowState | None:
        """Perform outside effects with no transaction open, then record each answer.

        Returns where the flow stands after the last answer (None: not known without a read).
        """
        state = None
        while calls:
            call = calls.pop(0)
            ctx = StepContext(call.flow_id, call.seq, self.clock(), call.attempt, None)
            outcome = self.steps.call(call.handler, call.request, ctx)
            more, state = self._record_call(call, outcome)
            calls.extend(more)
        return state

    def _record_call(self, call: Call, outcome: Outcome) -> tuple[list[Call], FlowState | None]:
        """Record an effect's answer and run on: (further calls, the state it left)."""
        with self._operation(call.flow_id) as (inst, tx):
            pending = inst.pending
            if pending is None or pending.seq != call.seq or pending.mode != "call":
                return [], None  # answered meanwhile (a recovery or a cancel): that record stands
            batch: list[FlowEvent] = []
            self.steps.settle(
                inst,
                batch,
                call.request,
                pending.request,
                outcome,
                seq=call.seq,
                attempt=call.attempt,
                opened=True,
            )
            calls = self.steps.drive(inst, tx, batch)
        return calls, _state_of(inst)  # its last event is one just written, which says this


def _state_of(inst: Instance) -> FlowState:
    """Where a live instance stands (as its log says, once its last step is written)."""
    pending = inst.pending
    return FlowState(
        flow_id=inst.flow_id,
        name=inst.definition.name,
        version=inst.definition.version,
        status=inst.status,
        awaits=list(pending.awaits) if pending else [],
        due=pending.due if pending else None,
    )


def _summary(flow_id: str, events: list[AnyFlowEvent]) -> FlowSummary | None:
    summary = None
    for event in events:
        summary = advance(summary, flow_id, event)
    return summary


def _awaited_option(inst: Instance, awaiting: type[Request[Any]]) -> int | None:
    """Which option of the open awaited request `awaiting` answers (None: not waiting on it)."""
    pending, request = inst.pending, inst.pending_request
    if inst.ended is not None or pending is None or pending.mode != "await" or request is None:
        return None
    options = request.options if isinstance(request, FirstOf) else (request,)
    for index, option in enumerate(options):
        if type(option) is awaiting:
            return index
    return None


def _not_waiting(inst: Instance, awaiting: type[Request[Any]]) -> Resumption:
    pending = inst.pending
    waits = ", ".join(pending.awaits) if pending and pending.mode == "await" else "nothing"
    reason = f"not waiting on {tag_of(awaiting)} (it is {inst.status}, waiting on {waits})"
    return Resumption(flow_id=inst.flow_id, resumed=False, status=inst.status, reason=reason)
