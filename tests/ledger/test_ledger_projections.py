"""Projections: kept in the append's transaction, rebuilt from events alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import Balances, Deposited, Withdrawn, state

from ledger import FlowsProjection, Ledger, Projection


def _balances(ledger: Ledger) -> list[tuple[str, int]]:
    return ledger.query("SELECT account, amount FROM balances ORDER BY account")


def test_projections_satisfy_the_protocol() -> None:
    assert isinstance(Balances(), Projection)
    assert isinstance(FlowsProjection(), Projection)


def test_projection_follows_every_append(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 10), Withdrawn("a", 3)])
    ledger.append("account:b", [Deposited("b", 1)])
    ledger.append("other", [Deposited("z", 1)])  # not an account stream: ignored
    assert _balances(ledger) == [("a", 7), ("b", 1)]


def test_rebuild_reproduces_the_tables(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 10), Withdrawn("a", 3)])
    ledger.append("account:b", [Deposited("b", 1)])
    before, head = _balances(ledger), ledger.head()
    ledger.query("DELETE FROM balances")
    assert ledger.rebuild() == 3
    assert _balances(ledger) == before
    assert ledger.head() == head
    assert ledger.verify().ok


def test_failing_projection_rolls_the_append_back(path: Path) -> None:
    balances = Balances()
    with Ledger.open(path, projections=[balances]) as ledger:
        ledger.append("account:a", [Deposited("a", 10)])
        before = state(ledger)
        balances.fail_on = 3
        with pytest.raises(RuntimeError):
            ledger.append("account:a", [Deposited("a", 1), Deposited("a", 2)])
        assert state(ledger) == before
        assert _balances(ledger) == [("a", 10)]
        balances.fail_on = None
        assert ledger.append("account:a", [Deposited("a", 1)], expected_version=1) == 2


def test_projection_added_later_is_filled_from_the_events(path: Path) -> None:
    with Ledger.open(path) as ledger:
        ledger.append("account:a", [Deposited("a", 10), Withdrawn("a", 4)])
    with Ledger.open(path, projections=[Balances()]) as ledger:
        assert _balances(ledger) == [("a", 6)]
        assert ledger.verify().ok


def test_projection_names_must_be_unique(path: Path) -> None:
    with pytest.raises(ValueError, match="unique"):
        Ledger.open(path, projections=[Balances(), Balances()])
