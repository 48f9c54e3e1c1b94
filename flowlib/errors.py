"""Errors raised by flowlib.

```
FlowError
 + FlowNotFound          no instance with that id
 + UnknownFlow           no flow registered under that name and version
 + NondeterminismError   the code yielded a different request than the log holds
 + WrongResponse         a response of the wrong type for what the flow awaits
 + ImportRejected        an export document that cannot be imported (format, damage, conflict)
 + RetireRefused         a moved instance cannot be retired here: it changed since the export
 + StepFailed            a handler's typed failure, thrown into the flow
    + Cancelled          thrown into the flow by `Engine.cancel`
```
"""

from __future__ import annotations

from typing import Any


class FlowError(Exception):
    """Root of every error flowlib raises."""


class FlowNotFound(FlowError):
    """No flow instance has this id."""

    def __init__(self, flow_id: str) -> None:
        self.flow_id = flow_id
        super().__init__(f"no flow with id {flow_id!r}")


class UnknownFlow(FlowError):
    """No flow is registered under this name (and version)."""

    def __init__(self, name: str, version: int | None, known: list[int]) -> None:
        self.name, self.version, self.known = name, version, known
        wanted = name if version is None else f"{name} v{version}"
        have = ", ".join(f"v{v}" for v in known) or "none"
        super().__init__(f"flow {wanted!r} is not registered (registered versions: {have})")


class NondeterminismError(FlowError):
    """The flow's code yielded a request that differs from the one in its log."""

    def __init__(self, flow_id: str, step: int, logged: str, yielded: str) -> None:
        self.flow_id, self.step, self.logged, self.yielded = flow_id, step, logged, yielded
        super().__init__(
            f"flow {flow_id!r} diverged from its log at step {step}: "
            f"logged {logged}, code yielded {yielded}"
        )


class WrongResponse(FlowError):
    """A resume carried a response the awaited request does not accept."""

    def __init__(self, flow_id: str, expected: str, got: str) -> None:
        self.flow_id, self.expected, self.got = flow_id, expected, got
        super().__init__(f"flow {flow_id!r} expects a {expected} response, got {got}")


class ImportRejected(FlowError):
    """An export document was not imported; nothing was written."""

    def __init__(self, reason: str, flow_id: str | None = None) -> None:
        self.reason, self.flow_id = reason, flow_id
        where = f" (flow {flow_id!r})" if flow_id else ""
        super().__init__(f"import rejected{where}: {reason}")


class RetireRefused(FlowError):
    """The last step of a move was refused; nothing was written."""

    def __init__(self, flow_id: str, reason: str) -> None:
        self.flow_id, self.reason = flow_id, reason
        super().__init__(f"cannot retire {flow_id!r} here: {reason}")


class StepFailed(FlowError):
    """A request failed; raised by handlers and thrown into the flow.

    `kind` is a stable machine name ("card_declined", "rate_limited"); `retryable` says
    whether trying again may succeed, which the request's retry policy acts on.
    """

    def __init__(self, kind: str, message: str = "", *, retryable: bool = False) -> None:
        self.kind, self.message, self.retryable = kind, message, retryable
        super().__init__(f"{kind}: {message}" if message else kind)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_step_failed, (type(self), self.kind, self.message, self.retryable))


class Cancelled(StepFailed):
    """Thrown into a flow by `Engine.cancel`; compensate in `except`/`finally`."""

    def __init__(self, reason: str = "") -> None:
        super().__init__("cancelled", reason, retryable=False)


def _rebuild_step_failed(
    cls: type[StepFailed], kind: str, message: str, retryable: bool
) -> StepFailed:
    if cls is Cancelled:
        return Cancelled(message)
    return cls(kind, message, retryable=retryable)
