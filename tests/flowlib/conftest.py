"""Fixtures for the flowlib tests: a fresh registry and a fake clock per test."""

from __future__ import annotations

import pytest

from flowlib import Registry

from flow_helpers import FakeClock


@pytest.fixture
def registry() -> Registry:
    return Registry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
