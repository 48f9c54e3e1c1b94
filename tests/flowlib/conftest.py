"""Fixtures for the flowlib tests: a fresh registry and a fake clock per test."""

from __future__ import annotations

import pytest
from flow_helpers import FakeClock

from flowlib import Registry


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
