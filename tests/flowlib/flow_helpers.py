"""Shared test kit for flowlib: a fake clock, request types, store wrappers, log snapshots.

Named `flow_helpers` (not `strategies`/`conftest`) so it cannot shadow `tests/strategies.py`
when pytest puts several test directories on `sys.path`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from flowlib import (
    AnyFlowEvent,
    Engine,
    MemoryStore,
    Registry,
    Request,
    StepContext,
    StepFailed,
    stream_of,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when a test moves it."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


# -- request types used across the tests ------------------------------------------------


class Reserve(Request[str]):
    sku: str


class Release(Request[str]):
    sku: str


class Charge(Request[str]):
    amount: int


class Refund(Request[str]):
    amount: int


class Pay(Request[int]):
    order: str


class Approve(Request[bool]):
    who: str = ""


class Quote(msgspec.Struct, frozen=True):
    total: int
    currency: str


class GetQuote(Request[Quote]):
    sku: str


def reserve(request: Reserve, ctx: StepContext) -> str:
    return f"res-{request.sku}"


def release(request: Release, ctx: StepContext) -> str:
    return f"released-{request.sku}"


def charge(request: Charge, ctx: StepContext) -> str:
    return f"ch-{request.amount}"


def refund(request: Refund, ctx: StepContext) -> str:
    return f"rf-{request.amount}"


def declined(request: Any, ctx: StepContext) -> str:
    raise StepFailed("card_declined", "insufficient funds", retryable=False)


HANDLERS: dict[Any, Any] = {Reserve: reserve, Release: release, Charge: charge, Refund: refund}


def make_engine(
    registry: Registry,
    handlers: dict[Any, Any] | None = None,
    store: Any = None,
    clock: FakeClock | None = None,
    **kw: Any,
) -> Engine:
    return Engine(
        store if store is not None else MemoryStore(),
        HANDLERS if handlers is None else handlers,
        clock=clock or FakeClock(),
        registry=registry,
        **kw,
    )


# -- snapshots ---------------------------------------------------------------------------

_encode = msgspec.json.Encoder().encode


def log_bytes(store: Any, flow_id: str) -> bytes:
    """A flow's log as exact JSON (comparable across stores)."""
    return _encode(store.read(stream_of(flow_id), AnyFlowEvent))


def snapshot(store: MemoryStore) -> bytes:
    """Every stream and the flow index of a MemoryStore, as JSON bytes."""
    streams = {name: store.read(name) for name in store.streams()}
    index = sorted(store.flows(), key=lambda row: row.flow_id)
    return _encode({"streams": streams, "index": index})


def kinds(store: Any, flow_id: str) -> list[str]:
    """The event type names of a flow's log."""
    return [type(event).__name__ for event in store.read(stream_of(flow_id), AnyFlowEvent)]


# -- store wrappers ----------------------------------------------------------------------


class Crash(Exception):
    """A simulated process crash (raised by FlakyStore)."""


class FlakyStore(MemoryStore):
    """A MemoryStore whose `fail_on`-th append (1-based) raises `Crash` (once)."""

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.appends = 0

    def append(self, stream: str, items: Sequence[msgspec.Struct], *, expected_version: int) -> int:
        self.appends += 1
        if self.fail_on is not None and self.appends == self.fail_on:
            self.fail_on = None
            raise Crash(f"crash on append #{self.appends}")
        return super().append(stream, items, expected_version=expected_version)


class ProbeStore(MemoryStore):
    """A MemoryStore that knows whether a transaction is open right now."""

    def __init__(self) -> None:
        super().__init__()
        self.open = 0

    @contextmanager
    def transaction(self) -> Iterator[MemoryStore]:
        self.open += 1
        try:
            with super().transaction() as tx:
                yield tx
        finally:
            self.open -= 1
