"""The replay log: the events a flow instance's stream holds.

A stream opens with `FlowStarted`; each step `seq` is either recorded at once
(`StepDone`) or opened by `StepPending` and closed by `StepAnswered`. `FlowEnded` closes
the stream; `FlowStuck` marks a diverged instance without touching its steps, and
`FlowRecovered` takes it back once its log replays against the code again.

Events that change an instance's summary always write `status` (never omitted), and may
carry `awaits` and `due` (absent means none): a store keeps its flow index from those
three fields alone (the SQLite ledger reads them structurally), so every other field is
free to evolve. A stuck instance keeps its `awaits` and `due`, so its timer is still
visible (and fires once the code is fixed) instead of being stranded silently.

Requests, responses and arguments are kept as the exact JSON the flow produced
(`msgspec.Raw`): replay compares bytes, and decodes a response only with the type the live
request declares.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

Status = Literal["running", "waiting", "completed", "failed", "cancelled", "stuck", "moved"]
FINISHED: frozenset[str] = frozenset({"completed", "failed", "cancelled", "moved"})
PendingMode = Literal["await", "call", "retry"]
NULL = msgspec.Raw(b"null")


class Ok(msgspec.Struct, frozen=True, tag=True):
    """A step answered with a value."""

    value: msgspec.Raw


class Failed(msgspec.Struct, frozen=True, tag=True, kw_only=True, omit_defaults=True):
    """A step answered with a typed failure (thrown into the flow as `StepFailed`)."""

    kind: str
    message: str = ""
    retryable: bool = False
    attempts: int = 1


class CancelledBy(msgspec.Struct, frozen=True, tag=True):
    """The step was interrupted by a cancellation (thrown as `Cancelled`)."""

    reason: str


Outcome = Ok | Failed | CancelledBy


class FlowEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True, omit_defaults=True):
    """Base of the events in a flow's stream."""


class FlowStarted(FlowEvent, omit_defaults=False, frozen=True):
    """The instance began: which code, which version, which arguments."""

    flow_id: str
    name: str
    version: int
    args: msgspec.Raw
    started_at: datetime
    status: Status = "running"


class StepDone(FlowEvent, frozen=True):
    """A serviced step: the request and its outcome, recorded together."""

    seq: int
    request: msgspec.Raw
    outcome: Outcome


class StepPending(FlowEvent, frozen=True):
    """A step left open: awaited (`await`), an effect under way (`call`) or a retry wait."""

    seq: int
    request: msgspec.Raw
    mode: PendingMode
    status: Status
    awaits: list[str] = []
    due: datetime | None = None
    attempts: int = 0
    error: Failed | None = None


class StepAnswered(FlowEvent, omit_defaults=False, frozen=True):
    """The open step `seq` was answered; the flow runs on."""

    seq: int
    outcome: Outcome
    status: Status = "running"


class FlowEnded(FlowEvent, frozen=True):
    """The generator returned or raised; the instance is finished."""

    status: Status
    result: msgspec.Raw = NULL
    error: Failed | None = None


class FlowStuck(FlowEvent, omit_defaults=False, frozen=True):
    """Replay diverged from the log at `seq`; the steps are kept as they were."""

    seq: int
    logged: str
    yielded: str
    status: Status = "stuck"
    awaits: list[str] = []
    due: datetime | None = None


class FlowRecovered(FlowEvent, omit_defaults=False, frozen=True):
    """A stuck instance replays against the code again: it waits (or runs) as before."""

    status: Status
    awaits: list[str] = []
    due: datetime | None = None


AnyFlowEvent = (
    FlowStarted | StepDone | StepPending | StepAnswered | FlowEnded | FlowStuck | FlowRecovered
)


class FlowSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One row of a store's flow index."""

    flow_id: str
    name: str
    version: int
    status: str
    awaits: list[str] = []
    due: datetime | None = None


def advance(summary: FlowSummary | None, flow_id: str, event: FlowEvent) -> FlowSummary | None:
    """The index row after `event`, given the row before it (None before `FlowStarted`)."""
    if isinstance(event, FlowStarted):
        return FlowSummary(
            flow_id=flow_id, name=event.name, version=event.version, status=event.status
        )
    status = getattr(event, "status", None)
    if summary is None or status is None:
        return summary
    return FlowSummary(
        flow_id=flow_id,
        name=summary.name,
        version=summary.version,
        status=status,
        awaits=list(getattr(event, "awaits", ())),
        due=getattr(event, "due", None),
    )


def stream_of(flow_id: str) -> str:
    """The store stream that holds a flow instance's log."""
    return f"flow:{flow_id}"
