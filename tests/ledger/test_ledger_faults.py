"""Faults: refused UPDATE/DELETE, a full disk, and tampering that verify() must find."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import SQLITE_ONLY, Deposited, raw, state, tamper

from ledger import AppendOnlyViolation, BrokenLink, DiskFull, Gap, Ledger
from ledger.codec import chain_hash


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET data = '{}' WHERE position = 1",
        "DELETE FROM events WHERE position = 2",
        "DELETE FROM events",
        "INSERT OR REPLACE INTO events SELECT * FROM events WHERE position = 1",
    ],
)
@SQLITE_ONLY
def test_update_and_delete_are_refused_with_a_typed_error(ledger: Ledger, statement: str) -> None:
    ledger.append("account:a", [Deposited("a", 1), Deposited("a", 2)])
    before = state(ledger)
    with pytest.raises(AppendOnlyViolation):
        ledger.db.execute(statement)
    with pytest.raises(AppendOnlyViolation), ledger.transaction():
        ledger.append("account:a", [Deposited("a", 3)])
        ledger.db.execute(statement)
    with pytest.raises(AppendOnlyViolation):
        ledger.db["events"].delete_where("position = 1")  # type: ignore[union-attr]
    assert state(ledger) == before
    assert ledger.verify().ok


def _fill_until_full(ledger: Ledger) -> None:
    pages = ledger.db.execute("PRAGMA page_count").fetchone()[0]
    ledger.db.execute(f"PRAGMA max_page_count = {pages + 2}")


@SQLITE_ONLY
def test_disk_full_during_append_writes_nothing(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 1)])
    before = state(ledger)
    _fill_until_full(ledger)
    big = [Deposited("a" * 500, n) for n in range(200)]
    with pytest.raises(DiskFull):
        ledger.append("account:a", big)
    assert state(ledger) == before
    ledger.db.execute("PRAGMA max_page_count = 1073741823")
    assert ledger.append("account:a", big, expected_version=1) == 201
    assert ledger.verify().ok


@SQLITE_ONLY
def test_disk_full_inside_a_transaction_rolls_it_all_back(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 1)])
    before = state(ledger)
    _fill_until_full(ledger)
    with pytest.raises(DiskFull), ledger.transaction():
        ledger.append("account:a", [Deposited("a", 2)])
        ledger.append("account:b", [Deposited("b" * 500, n) for n in range(200)])
    assert state(ledger) == before
    assert ledger.db.execute("SELECT amount FROM balances").fetchall() == [(1,)]
    ledger.db.execute("PRAGMA max_page_count = 1073741823")
    assert ledger.verify().ok


def _seed(path: Path) -> None:
    with Ledger.open(path) as ledger:
        for n in range(5):
            ledger.append(f"account:{n % 2}", [Deposited(str(n % 2), n)])


def test_clean_ledger_verifies(path: Path) -> None:
    _seed(path)
    with Ledger.open(path) as ledger:
        report = ledger.verify()
    assert report.ok and report.events == 5 and report.head[0] == 5
    assert not report.gaps and report.broken is None and not report.missing_guards


def test_changed_body_is_the_first_broken_link(path: Path) -> None:
    _seed(path)
    tamper(path, """UPDATE events SET data = replace(data, '"amount":3', '"amount":300')""")
    with Ledger.open(path) as ledger:
        report = ledger.verify()
    assert not report.ok
    assert isinstance(report.broken, BrokenLink) and report.broken.position == 4
    assert report.broken.expected != report.broken.found
    assert report.missing_guards == ["events_refuse_update", "events_refuse_delete"]


def test_changed_body_with_rehashed_row_breaks_the_next_link(path: Path) -> None:
    _seed(path)
    conn = raw(path)
    rows = conn.execute(
        "SELECT * FROM events WHERE position IN (3, 4) ORDER BY position"
    ).fetchall()
    conn.close()
    (_, _, _, _, _, _, _, previous), (position, stream, version, type_, data, at, key, _) = rows
    forged_data = data.replace('"amount":3', '"amount":300')
    forged = chain_hash(previous, position, stream, version, type_, forged_data.encode(), at, key)
    tamper(path, f"UPDATE events SET data = '{forged_data}', hash = '{forged}' WHERE position = 4")
    with Ledger.open(path) as ledger:
        report = ledger.verify()
    assert report.broken is not None and report.broken.position == 5


def test_deleted_event_shows_as_gaps(path: Path) -> None:
    _seed(path)
    tamper(path, "DELETE FROM events WHERE position = 3")
    with Ledger.open(path) as ledger:
        report = ledger.verify()
    assert not report.ok and report.events == 4
    assert Gap(None, 3, 4) in report.gaps and Gap("account:0", 2, 3) in report.gaps
    assert report.broken is not None and report.broken.position == 4


def test_tampered_projection_differs_from_rebuild_until_rebuilt(ledger: Ledger) -> None:
    ledger.append("account:a", [Deposited("a", 1), Deposited("a", 2)])
    ledger.query("UPDATE balances SET amount = 99")
    report = ledger.verify()
    assert not report.ok and [(d.projection, d.table) for d in report.projections] == [
        ("balances", "balances")
    ]
    assert (report.projections[0].missing, report.projections[0].unexpected) == (1, 1)
    assert ledger.query("SELECT amount FROM balances") == [(99,)]  # rolled back
    assert ledger.rebuild() == 2
    assert ledger.verify().ok
