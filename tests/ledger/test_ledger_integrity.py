"""Fail closed: every event read to decide is checked, the tip before writes, scrubs, anchors."""

from __future__ import annotations

from pathlib import Path

import pytest
from ledger_helpers import Balances, Deposited, raw, state, tamper

from ledger import Anchor, ChainBroken, Ledger

FORGE_AMOUNT = """UPDATE events SET data = replace(data, '"amount":2', '"amount":900')"""


def _seed(path: Path, count: int = 6) -> None:
    with Ledger.open(path, projections=[Balances()]) as ledger:
        for n in range(count):
            ledger.append(f"account:{n % 2}", [Deposited(str(n % 2), n)])


def _head(path: Path) -> tuple[int, str]:
    with Ledger.open(path, readonly=True) as ledger:
        return ledger.head()


def test_a_changed_event_is_refused_when_read_and_nothing_is_written(path: Path) -> None:
    _seed(path)
    tamper(path, FORGE_AMOUNT + " WHERE position = 3", keep_guards=True)  # account:0 v2
    with Ledger.open(path, projections=[Balances()]) as ledger:
        before = state(ledger)
        with pytest.raises(ChainBroken) as caught:
            ledger.read("account:0", Deposited)
        assert caught.value.position == 3 and "position 3" in str(caught.value)
        with pytest.raises(ChainBroken), ledger.transaction():  # a decision made on it
            ledger.read("account:0", Deposited)
            ledger.append("account:0", [Deposited("0", 1)])
        assert state(ledger) == before
        with pytest.raises(ChainBroken):
            ledger.records("account:0")
        assert [e.amount for e in ledger.read("account:1", Deposited)] == [1, 3, 5]  # untouched
        assert ledger.read("account:0", Deposited, from_version=2) == [Deposited("0", 4)]


def test_a_rewritten_hash_is_caught_by_its_successor_when_that_is_read(path: Path) -> None:
    _seed(path)
    with Ledger.open(path) as ledger:
        record = ledger.records("account:0")[1]
    from ledger.codec import chain_hash

    with Ledger.open(path) as ledger:
        previous = ledger.records("account:1")[0].hash  # position 2
    forged_data = record.data.decode().replace('"amount":2', '"amount":900')
    forged = chain_hash(
        previous, 3, "account:0", 2, record.type, forged_data.encode(), record.recorded_at, None
    )
    tamper(path, f"UPDATE events SET data = '{forged_data}', hash = '{forged}' WHERE position = 3")
    with Ledger.open(path) as ledger:
        with pytest.raises(ChainBroken) as caught:
            ledger.read("account:1", Deposited)  # position 4 follows the rewritten hash
        assert caught.value.position == 4


def test_a_missing_predecessor_is_refused(path: Path) -> None:
    _seed(path)
    tamper(path, "DELETE FROM events WHERE position = 4")
    with Ledger.open(path) as ledger, pytest.raises(ChainBroken, match="missing"):
        ledger.read("account:0", Deposited)  # position 5 has no predecessor


def test_a_broken_tip_refuses_every_write_but_reads_and_verify_work(path: Path) -> None:
    _seed(path)
    tamper(path, """UPDATE events SET data = replace(data, '"amount":5', '"amount":500')""")
    with Ledger.open(path, projections=[Balances()]) as ledger:
        before = state(ledger)
        for write in (
            lambda: ledger.append("account:9", [Deposited("9", 1)]),
            lambda: ledger.transaction().__enter__(),
        ):
            with pytest.raises(ChainBroken) as caught:
                write()
            assert caught.value.position == 6
        assert state(ledger) == before
        assert ledger.count() == 6 and ledger.version("account:1") == 3
        report = ledger.verify()
        assert not report.ok and report.broken and report.broken.position == 6
    with Ledger.open(path, readonly=True) as reader:
        assert reader.head()[0] == 6


def test_another_process_breaking_the_tip_is_noticed_before_the_next_write(path: Path) -> None:
    _seed(path)
    with Ledger.open(path) as ledger:
        ledger.append("account:0", [Deposited("0", 1)])
        tamper(path, """UPDATE events SET data = replace(data, '"amount":1}', '"amount":7}')""")
        with pytest.raises(ChainBroken):
            ledger.append("account:0", [Deposited("0", 2)])


def test_rebuild_refuses_a_broken_chain_and_changes_nothing(path: Path) -> None:
    _seed(path)
    with Ledger.open(path, projections=[Balances()]) as ledger:
        ledger.append("account:z", [Deposited("z", 1)])  # the tip stays intact
    tamper(path, FORGE_AMOUNT + " WHERE position = 3")
    conn = raw(path)
    balances = conn.execute("SELECT * FROM balances ORDER BY account").fetchall()
    conn.close()
    with Ledger.open(path, projections=[Balances()]) as ledger:
        with pytest.raises(ChainBroken) as caught:
            ledger.rebuild()
        assert caught.value.position == 3
        assert ledger.db.execute("SELECT * FROM balances ORDER BY account").fetchall() == balances


def test_scrub_walks_only_what_is_new_and_records_where_it_got(path: Path) -> None:
    _seed(path)
    with Ledger.open(path) as ledger:
        first = ledger.scrub()
        assert first.ok and not first.full and first.since == 0 and first.events == 6
        assert first.last_full is None
        for n in range(3):
            ledger.append("account:2", [Deposited("2", n)])
        second = ledger.scrub()
        assert second.ok and second.since == 6 and second.events == 3
        assert ledger.scrub().events == 0
        full = ledger.verify()
        assert full.ok and full.full
        again = ledger.scrub()
        assert again.last_full is not None and again.last_full.position == 9


def test_scrub_finds_a_change_after_its_mark_and_a_changed_mark(path: Path) -> None:
    _seed(path)
    with Ledger.open(path) as ledger:
        assert ledger.scrub().ok
        ledger.append("account:2", [Deposited("2", 2)])
    tamper(path, FORGE_AMOUNT + " WHERE position = 7", keep_guards=True)
    with Ledger.open(path) as ledger:
        report = ledger.scrub()
        assert not report.ok and report.broken and report.broken.position == 7
    tamper(path, "UPDATE events SET hash = lower(hash) || '' WHERE position = 7")  # no-op
    tamper(
        path,
        f"UPDATE events SET hash = '{'0' * 64}' WHERE position = 6",  # never a real hash
    )
    with Ledger.open(path, readonly=True) as ledger:
        report = ledger.scrub()
        assert not report.ok and report.broken and report.broken.position == 6


def test_expect_head_catches_lost_trailing_events(path: Path) -> None:
    _seed(path)
    anchor = Anchor(*_head(path))
    with Ledger.open(path) as ledger:
        assert ledger.verify(expect_head=anchor).ok
        assert ledger.scrub(expect_head=anchor).ok
        ledger.append("account:0", [Deposited("0", 1)])
        assert ledger.verify(expect_head=anchor).ok  # still in the chain
    # A lost -wal (or a restored backup) drops the newest events: the chain alone stays valid.
    tamper(path, "DELETE FROM events WHERE position >= 6")
    with Ledger.open(path) as ledger:
        plain = ledger.verify()
        assert plain.broken is None and not plain.gaps, "the chain cannot tell on its own"
        anchored = ledger.verify(expect_head=anchor)
        assert not anchored.ok and anchored.anchor_found is None


@pytest.mark.parametrize("text", ["", "12", "x:ab", "0:" + "a" * 64, "3:" + "g" * 64, "3:abc"])
def test_a_bad_anchor_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="POSITION:HASH"):
        Anchor.parse(text)


def test_verify_never_takes_the_write_lock(path: Path) -> None:
    _seed(path)
    with Ledger.open(path, readonly=True, projections=[Balances()]) as reader:
        writer = raw(path)
        writer.execute("BEGIN IMMEDIATE")  # someone else holds SQLite's write lock
        try:
            assert reader.verify().ok and reader.scrub().ok
        finally:
            writer.execute("ROLLBACK")
            writer.close()


def test_verify_and_rebuild_read_the_chain_in_pages_and_miss_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk reads a page at a time (memory stays flat): pages join with no event lost,
    counted twice or left unchecked, and a change on a later page is still found."""
    from ledger import verify

    _seed(path, count=11)
    monkeypatch.setattr(verify, "WALK_PAGE", 3)
    with Ledger.open(path, projections=[Balances()]) as ledger:
        before = state(ledger)
        report = ledger.verify()
        assert report.ok and report.events == 11 and report.head == ledger.head(), report
        assert ledger.rebuild() == 11 and state(ledger) == before
    forge = "UPDATE events SET data = replace(data, '\"amount\":9', '\"amount\":900')"
    tamper(path, forge + " WHERE position = 10", keep_guards=True)  # on the fourth page
    with Ledger.open(path, projections=[Balances()]) as ledger:
        broken = ledger.verify()
        assert not broken.ok and broken.broken is not None and broken.broken.position == 10
