"""Registering flows: `@flow(name, version=...)` on a generator function."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Generator
from typing import Any, TypeVar

import msgspec

from flowlib.errors import UnknownFlow
from flowlib.requests import Request

T = TypeVar("T")
Flow = Generator[Request[Any], Any, T]
FlowFunction = Callable[..., Generator[Request[Any], Any, Any]]


class FlowDefinition(msgspec.Struct, frozen=True):
    """A registered flow: its name, version, generator function and argument/result types."""

    name: str
    version: int
    fn: FlowFunction
    args_type: Any
    result_type: Any

    def decode_args(self, raw: bytes) -> tuple[Any, ...]:
        """The call arguments, decoded from their logged JSON with the function's hints."""
        return tuple(msgspec.json.decode(raw, type=self.args_type))


def _signature_types(fn: FlowFunction) -> tuple[Any, Any]:
    hints = typing.get_type_hints(fn)
    params = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    args_type = tuple[tuple(hints.get(p.name, Any) for p in params)] if params else tuple[()]  # type: ignore[misc]
    returns = hints.get("return", Any)
    result = typing.get_args(returns)[2] if len(typing.get_args(returns)) == 3 else Any
    return args_type, result


class Registry:
    """Flow definitions by name and version; several versions of a flow may coexist."""

    def __init__(self) -> None:
        self._flows: dict[str, dict[int, FlowDefinition]] = {}

    def register(self, name: str, version: int, fn: FlowFunction) -> FlowDefinition:
        """Register `fn` as flow `name` at `version` (re-registering replaces it)."""
        if not inspect.isgeneratorfunction(fn):
            raise TypeError(f"flow {name!r} must be a generator function")
        args_type, result_type = _signature_types(fn)
        definition = FlowDefinition(name, version, fn, args_type, result_type)
        self._flows.setdefault(name, {})[version] = definition
        return definition

    def get(self, name: str, version: int | None = None) -> FlowDefinition:
        """The definition for `name` at `version` (the newest when `version` is None)."""
        versions = self._flows.get(name, {})
        chosen = max(versions, default=None) if version is None else version
        if chosen is None or chosen not in versions:
            raise UnknownFlow(name, version, sorted(versions))
        return versions[chosen]

    def names(self) -> list[str]:
        """Registered flow names, sorted."""
        return sorted(self._flows)


REGISTRY = Registry()


def flow(
    name: str, *, version: int = 1, registry: Registry | None = None
) -> Callable[[FlowFunction], FlowFunction]:
    """Register the decorated generator function as flow `name` at `version`."""

    def register(fn: FlowFunction) -> FlowFunction:
        (registry or REGISTRY).register(name, version, fn)
        return fn

    return register
