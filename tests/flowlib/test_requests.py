"""Requests: the base class, the built-ins, response types, tags and retry policies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
from flow_helpers import T0, Approve, GetQuote, Pay, Quote, Reserve

from flowlib import (
    FirstOf,
    NewId,
    Now,
    Request,
    RetryPolicy,
    Timer,
    Won,
    first_of,
    response_type,
    tag_of,
)


def test_response_types_come_from_the_generic_base() -> None:
    assert response_type(Reserve) is str
    assert response_type(Pay) is int
    assert response_type(GetQuote) is Quote
    assert response_type(Timer) is datetime
    assert response_type(Now) is datetime
    assert response_type(NewId) is str
    assert response_type(FirstOf) == Won[Any]


def test_untyped_request_answers_anything() -> None:
    class Loose(Request):  # type: ignore[type-arg]
        pass

    class Inherits(Pay):
        pass

    assert response_type(Loose) is Any
    assert response_type(Inherits) is int


def test_tag_is_the_class_name() -> None:
    assert tag_of(Reserve) == "Reserve"
    assert tag_of(Reserve(sku="a")) == "Reserve"
    assert tag_of(Timer(seconds=1)) == "Timer"


def test_builtin_tags_are_pinned() -> None:
    """Tags are written into logs: renaming a built-in would strand every stored flow."""
    builtins = [Timer, Now, NewId, FirstOf]
    assert [tag_of(cls) for cls in builtins] == ["Timer", "Now", "NewId", "FirstOf"]


def test_requests_encode_with_their_tag_and_omit_defaults() -> None:
    encode = msgspec.json.encode
    assert encode(Reserve(sku="a")) == b'{"type":"Reserve","sku":"a"}'
    assert encode(Timer(seconds=5)) == b'{"type":"Timer","seconds":5}'
    assert encode(Now()) == b'{"type":"Now"}'
    policy = RetryPolicy(max_attempts=2)
    assert encode(Reserve(sku="a", retry=policy)) == (
        b'{"type":"Reserve","sku":"a","retry":{"max_attempts":2}}'
    )


def test_first_of_needs_two_options_and_keeps_their_order() -> None:
    race = first_of(Pay(order="o"), Timer(seconds=60))
    assert race.options == (Pay(order="o"), Timer(seconds=60))
    with pytest.raises(ValueError, match="at least two"):
        first_of(Pay(order="o"))
    with pytest.raises(ValueError):
        first_of()


def test_timer_due_at_an_instant_or_after_a_duration() -> None:
    assert Timer(at=T0).due(T0 + timedelta(days=1)) == T0
    assert Timer(seconds=90).due(T0) == T0 + timedelta(seconds=90)
    assert Timer().due(T0) == T0


def test_retry_policy_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_seconds=2, multiplier=3, max_backoff_seconds=50)
    delays = [policy.delay(attempt).total_seconds() for attempt in range(1, 6)]
    assert delays == [2, 6, 18, 50, 50]
    assert RetryPolicy().delay(0) == timedelta(seconds=1)


def test_requests_are_frozen_values() -> None:
    request = Reserve(sku="a")
    with pytest.raises(AttributeError):
        request.sku = "b"  # type: ignore[misc]
    assert request == Reserve(sku="a") and hash(request) == hash(Reserve(sku="a"))


def test_approve_default_field_round_trips() -> None:
    raw = msgspec.json.encode(Approve())
    assert msgspec.json.decode(raw, type=Approve) == Approve()
