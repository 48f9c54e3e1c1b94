"""Registering flows: names, versions, argument and result types."""

from __future__ import annotations

import pytest
from flow_helpers import Reserve, make_engine

from flowlib import REGISTRY, Flow, Registry, UnknownFlow, flow
from flowlib.errors import FlowError


def test_flow_decorator_registers_in_the_given_registry_and_returns_the_function() -> None:
    registry = Registry()

    def order(sku: str) -> Flow[str]:
        yield Reserve(sku=sku)
        return "done"

    assert flow("order", version=3, registry=registry)(order) is order
    definition = registry.get("order", 3)
    assert (definition.name, definition.version, definition.fn) == ("order", 3, order)
    assert registry.names() == ["order"]
    assert "order" not in REGISTRY.names() or REGISTRY.get("order").fn is not order


def test_non_generator_function_is_refused() -> None:
    with pytest.raises(TypeError, match="generator function"):
        flow("plain", registry=Registry())(lambda: None)


def test_get_defaults_to_newest_version_and_keeps_all_versions() -> None:
    registry = Registry()
    for version in (1, 3, 2):

        @flow("order", version=version, registry=registry)
        def order(v: int = version) -> Flow[int]:
            return v
            yield

    assert registry.get("order").version == 3
    assert [registry.get("order", v).version for v in (1, 2, 3)] == [1, 2, 3]


def test_reregistering_a_version_replaces_it() -> None:
    registry = Registry()

    @flow("f", registry=registry)
    def first() -> Flow[None]:
        yield Reserve(sku="a")

    @flow("f", registry=registry)
    def second() -> Flow[None]:
        yield Reserve(sku="b")

    assert registry.get("f", 1).fn is second


def test_unknown_name_is_a_clear_error() -> None:
    registry = Registry()
    with pytest.raises(UnknownFlow) as info:
        registry.get("nope")
    assert isinstance(info.value, FlowError)
    assert info.value.name == "nope" and info.value.known == []
    assert str(info.value) == "flow 'nope' is not registered (registered versions: none)"


def test_unknown_version_names_the_versions_there_are() -> None:
    registry = Registry()

    @flow("order", version=1, registry=registry)
    @flow("order", version=2, registry=registry)
    def order() -> Flow[None]:
        yield Reserve(sku="a")

    with pytest.raises(UnknownFlow) as info:
        registry.get("order", 7)
    assert info.value.version == 7 and info.value.known == [1, 2]
    assert "'order v7' is not registered (registered versions: v1, v2)" in str(info.value)


def test_arguments_and_result_types_come_from_the_hints() -> None:
    registry = Registry()

    @flow("typed", registry=registry)
    def typed(count: int, names: list[str]) -> Flow[dict[str, int]]:
        yield Reserve(sku="x")
        return {}

    definition = registry.get("typed")
    assert definition.decode_args(b'[3, ["a", "b"]]') == (3, ["a", "b"])
    assert definition.result_type == dict[str, int]


def test_flow_without_parameters_takes_no_arguments() -> None:
    registry = Registry()

    @flow("bare", registry=registry)
    def bare():  # type: ignore[no-untyped-def]
        yield Reserve(sku="x")

    assert registry.get("bare").decode_args(b"[]") == ()


def test_arguments_are_decoded_with_the_hints_before_the_flow_sees_them() -> None:
    registry = Registry()
    seen = []

    @flow("typed", registry=registry)
    def typed(count: int, tags: tuple[str, ...]) -> Flow[int]:
        seen.append((count, tags))
        yield Reserve(sku="x")
        return count

    engine = make_engine(registry)
    engine.start("typed", 2, ["a"], flow_id="t")
    assert seen == [(2, ("a",))]
    assert engine.result("t") == 2
