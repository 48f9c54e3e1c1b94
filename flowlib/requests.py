"""Requests a flow yields: the base class and the engine's built-ins."""

from __future__ import annotations

import functools
import typing
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import msgspec

R = TypeVar("R")


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """How often and how late a retryable failure is tried again (durably, by timers)."""

    max_attempts: int = 3
    backoff_seconds: float = 1.0
    multiplier: float = 2.0
    max_backoff_seconds: float = 300.0

    def delay(self, attempt: int) -> timedelta:
        """The wait before attempt `attempt + 1`, after `attempt` failures."""
        seconds = self.backoff_seconds * self.multiplier ** max(attempt - 1, 0)
        return timedelta(seconds=min(seconds, self.max_backoff_seconds))


class Request(msgspec.Struct, Generic[R], frozen=True, kw_only=True, tag=True, omit_defaults=True):
    """Base of every request a flow yields; `Request[R]` answers with an `R`.

    The tag is the class name, so never rename a request class, and give every new
    field a default: logs written by older code must still decode.
    """

    retry: RetryPolicy | None = None


@functools.cache
def response_type(cls: type[Request[Any]]) -> Any:
    """The response type `R` a request class declares as `Request[R]` (else `Any`)."""
    for klass in cls.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            origin = typing.get_origin(base)
            if isinstance(origin, type) and issubclass(origin, Request):
                (arg,) = typing.get_args(base)
                return Any if isinstance(arg, TypeVar) else arg
    return Any


class Timer(Request[datetime], frozen=True):
    """Fires at `at`, or `seconds` after the flow reaches it; answers the due instant."""

    seconds: float | None = None
    at: datetime | None = None

    def due(self, now: datetime) -> datetime:
        """The instant this timer falls due for a flow that reached it at `now`."""
        if self.at is not None:
            return self.at
        return now + timedelta(seconds=self.seconds or 0.0)


class Now(Request[datetime], frozen=True):
    """Asks the engine's clock; the answer is logged, so replay sees the same instant."""


class NewId(Request[str], frozen=True):
    """Asks for a fresh id, derived from the flow id and step so replay is exact."""


class Won(msgspec.Struct, Generic[R], frozen=True):
    """The answer to `FirstOf`: which option won (`index`, `winner` tag) and its response."""

    index: int
    winner: str
    value: R


class FirstOf(Request[Won[Any]], frozen=True):
    """A race between awaited requests; the first to be answered wins, the rest are withdrawn.

    Build one with `first_of(a, b)`; msgspec Structs cannot take `*args`.
    """

    options: tuple[Request[Any], ...]


def first_of(*options: Request[Any]) -> FirstOf:
    """A `FirstOf` race over `options`, in order of preference for simultaneous answers."""
    if len(options) < 2:
        raise ValueError("first_of needs at least two requests")
    return FirstOf(options=tuple(options))


def tag_of(request: Request[Any] | type[Request[Any]]) -> str:
    """The tag a request is logged under (its class name)."""
    cls = request if isinstance(request, type) else type(request)
    return str(cls.__struct_config__.tag)
