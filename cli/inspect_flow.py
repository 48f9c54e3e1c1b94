"""`flows why`: one screen on a flow — what it waits for and since when, timer, inbox, errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from commerce import SettleResult, Shop, UnknownOrder
from flowlib import NondeterminismError
from flowlib import stream_of as flow_stream


class Parked(msgspec.Struct, frozen=True, kw_only=True):
    """A provider event waiting in the order's inbox for its flow to take it."""

    event_id: str
    intent_id: str
    notice: dict[str, Any]


class Why(msgspec.Struct, frozen=True, kw_only=True):
    """Everything `flows why` knows about one flow."""

    flow_id: str
    name: str
    version: int
    status: str
    waiting_for: list[str]
    waiting_mode: str | None
    waiting_step: int | None
    waiting_since: str | None
    next_timer: datetime | None
    parked: list[Parked]
    last_error: str | None
    last_error_at: str | None
    replays: bool
    divergence: str | None
    order_status: str | None
    last_payment_failure: str | None = None


class Resumed(msgspec.Struct, frozen=True, kw_only=True):
    """What `flows resume` did for one flow: its status and the parked events applied."""

    flow_id: str
    status: str
    applied: list[SettleResult] = []
    error: str | None = None


def resume(shop: Shop, flow_id: str) -> Resumed:
    """Resume one stuck flow; a flow that still diverges is reported, not raised."""
    try:
        state, applied = shop.resume_flow(flow_id)
    except NondeterminismError as exc:
        return Resumed(flow_id=flow_id, status="stuck", error=str(exc))
    return Resumed(flow_id=flow_id, status=state.status, applied=applied)


def recorded_times(shop: Shop, flow_id: str) -> list[str]:
    """When each event of the flow's log was recorded (same order as `engine.log`)."""
    return [record.recorded_at for record in shop.ledger.records(flow_stream(flow_id))]


def request_tag(raw: msgspec.Raw) -> str:
    """The request's type name, with a `FirstOf` race spelled out."""
    value = msgspec.json.decode(raw)
    if not isinstance(value, dict):
        return "?"
    if value.get("type") == "FirstOf":
        return "FirstOf(" + " | ".join(str(o.get("type")) for o in value.get("options", [])) + ")"
    return str(value.get("type", "?"))


def _kind(event: Any) -> str:
    # The log's tags (class names) are stable: they are how the log is stored.
    return type(event).__name__


def _open_step(log: list[Any], times: list[str]) -> tuple[Any, str] | None:
    """The open `StepPending` (its latest record) and when it was first recorded, or None."""
    latest: dict[int, Any] = {}
    since: dict[int, str] = {}
    for event, at in zip(log, times, strict=False):
        if _kind(event) == "StepPending":
            latest[event.seq] = event
            since.setdefault(event.seq, at)
        elif _kind(event) == "StepAnswered":
            latest.pop(event.seq, None)
        elif _kind(event) == "FlowEnded":
            return None
    if not latest:
        return None
    seq = max(latest)
    return latest[seq], since[seq]


def _last_error(log: list[Any], times: list[str]) -> tuple[str, str] | None:
    found: tuple[str, str] | None = None
    for event, at in zip(log, times, strict=False):
        failure: Any = None
        outcome = getattr(event, "outcome", None)
        if outcome is not None and _kind(outcome) == "Failed":
            failure = outcome
        elif getattr(event, "error", None) is not None:
            failure = event.error
        elif _kind(event) == "FlowStuck":
            found = (
                f"stuck at step {event.seq}: logged {event.logged}, code yielded {event.yielded}",
                at,
            )
        if failure is not None:
            text = f"{failure.kind}: {failure.message}" if failure.message else failure.kind
            step = getattr(event, "seq", None)
            found = (text if step is None else f"step {step}: {text}", at)
    return found


def _parked(shop: Shop, flow_id: str) -> list[Parked]:
    return [
        Parked(event_id=p.event_id, intent_id=p.intent_id, notice=msgspec.to_builtins(p.notice))
        for p in shop.inbox(flow_id)
    ]


def why(shop: Shop, flow_id: str) -> Why:
    """Explain one flow (raises `FlowNotFound` for an unknown id)."""
    state = shop.engine.status(flow_id)
    log = shop.engine.log(flow_id)
    times = recorded_times(shop, flow_id)
    step = _open_step(log, times)
    error = _last_error(log, times)
    divergences = shop.engine.check_replay([flow_id])
    order_status, payment_failure = _order(shop, flow_id)
    return Why(
        flow_id=flow_id,
        name=state.name,
        version=state.version,
        status=state.status,
        waiting_for=list(state.awaits) or ([request_tag(step[0].request)] if step else []),
        waiting_mode=step[0].mode if step else None,
        waiting_step=step[0].seq if step else None,
        waiting_since=step[1] if step else None,
        next_timer=state.due,
        parked=_parked(shop, flow_id),
        last_error=error[0] if error else None,
        last_error_at=error[1] if error else None,
        replays=not divergences,
        divergence=divergences[0].error if divergences else None,
        order_status=order_status,
        last_payment_failure=payment_failure,
    )


def _order(shop: Shop, flow_id: str) -> tuple[str | None, str | None]:
    """The order's status and its last failed payment attempt (for an order's flow)."""
    try:
        view = shop.order(flow_id)
    except UnknownOrder:
        return None, None
    failures = [e for e in view.timeline if e.event == "PaymentFailed"]
    if not failures:
        return view.order.status, None
    last = failures[-1]
    reason = last.detail.get("reason") or "declined"
    return view.order.status, f"{reason} (event {last.detail.get('event_id')}, at {last.at[:19]})"


def relative(due: datetime, now: datetime | None = None) -> str:
    """ "in 29m" or "overdue by 3m"."""
    now = now or datetime.now(UTC)
    seconds = int((due - now).total_seconds())
    amount = abs(seconds)
    if amount < 120:
        text = f"{amount}s"
    elif amount < 7200:
        text = f"{amount // 60}m"
    else:
        text = f"{amount // 3600}h"
    return f"in {text}" if seconds >= 0 else f"overdue by {text}"
