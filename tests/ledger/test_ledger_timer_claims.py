"""Timer claims: leases on due flows, disjoint between claimers, invisible to verify and copy."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_helpers import T0, Balances, arm, has_table, leases
from together import held_in_a_thread, run_together

import ledger.timer_claims as timer_claims
from ledger import FlowRow, Ledger, LockTimeout, ReadOnlyLedger

if TYPE_CHECKING:
    from backends import Targets

pytestmark = pytest.mark.both_backends

WORKER = str(Path(__file__).with_name("ledger_worker.py"))
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
MINUTE = timedelta(minutes=1)


def _ids(rows: list[FlowRow]) -> list[str]:
    return [row.flow_id for row in rows]


def _minutes(*offsets: int | None) -> dict[str, datetime | None]:
    """Flows f0, f1, ... due that many minutes after T0 (None: no timer)."""
    return {f"f{n}": None if m is None else T0 + m * MINUTE for n, m in enumerate(offsets)}


def test_a_claim_takes_the_due_flows_by_due_time_and_leases_them(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, _minutes(3, 1, None, 2, 9, 1))
        now = T0 + 5 * MINUTE
        assert _ids(ledger.claim_due(now, limit=2, lease=30, owner="a")) == ["f1", "f5"]
        assert _ids(ledger.claim_due(now, lease=30, owner="b")) == ["f3", "f0"]
        assert ledger.claim_due(now, lease=30, owner="c") == []
        until = (now + timedelta(seconds=30)).isoformat(timespec="microseconds")
        assert leases(ledger) == {
            "f1": ("a", until),
            "f5": ("a", until),
            "f3": ("b", until),
            "f0": ("b", until),
        }
        later = ledger.claim_due(T0 + 10 * MINUTE, lease=30, owner="c")  # all expired by then
        assert _ids(later) == ["f1", "f5", "f3", "f0", "f4"]
        row = later[-1]
        assert (row.name, row.status, row.due, row.awaits) == (
            "nap",
            "waiting",
            T0 + 9 * MINUTE,
            ["Timer"],
        )


def test_an_unexpired_lease_is_skipped_and_an_expired_one_is_claimable(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, _minutes(0, 0))
        assert _ids(ledger.claim_due(T0, limit=1, lease=30, owner="dead")) == ["f0"]
        held = T0 + timedelta(seconds=29)
        assert _ids(ledger.claim_due(held, lease=30, owner="live")) == ["f1"]
        assert ledger.claim_due(held, lease=30, owner="live") == []
        expired = T0 + timedelta(seconds=30)  # `until` itself: expired
        assert _ids(ledger.claim_due(expired, lease=30, owner="live")) == ["f0"]
        assert leases(ledger)["f0"][0] == "live"


def test_release_drops_only_the_owners_leases(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, _minutes(0, 0, 0))
        ledger.claim_due(T0, limit=2, lease=30, owner="a")
        ledger.claim_due(T0, lease=30, owner="b")
        assert ledger.release_claims(["f0", "f1", "f2"], owner="a") == 2
        assert ledger.release_claims([], owner="a") == 0
        assert leases(ledger).keys() == {"f2"}
        assert _ids(ledger.claim_due(T0, lease=30, owner="c")) == ["f0", "f1"]


def test_a_claim_inside_a_transaction_rolls_back_with_it(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, _minutes(0))
        with pytest.raises(KeyError), ledger.transaction():  # the table's creation, too
            assert _ids(ledger.claim_due(T0, lease=30, owner="a")) == ["f0"]
            raise KeyError
        assert _ids(ledger.claim_due(T0, lease=30, owner="b")) == ["f0"]
        with ledger.transaction():
            assert ledger.claim_due(T0, lease=30, owner="c") == []
        with ledger.reading(), pytest.raises(ValueError, match="reading"):
            ledger.claim_due(T0, lease=30, owner="c")


def test_claims_are_not_a_projection_verify_rebuild_and_copy_ignore_them(
    targets: Targets,
) -> None:
    with Ledger.open(targets.new(), projections=[Balances()]) as ledger:
        arm(ledger, _minutes(0, 1, 2))
        ledger.claim_due(T0 + 5 * MINUTE, limit=2, lease=30, owner="a")
        report = ledger.verify()
        assert report.ok and not report.projections, report
        ledger.rebuild()
        assert leases(ledger).keys() == {"f0", "f1"}  # operational: a rebuild keeps them
        assert _ids(ledger.claim_due(T0 + 5 * MINUTE, lease=30, owner="b")) == ["f2"]
        destination = targets.new("copy")
        assert ledger.copy_to(destination).verified.ok
        with Ledger.open(destination) as copy:
            assert copy.count() == ledger.count()
            assert not has_table(copy, "timer_leases")
            assert copy.verify().ok


def test_opening_creates_no_lease_table_and_a_read_only_ledger_never_does(
    targets: Targets,
) -> None:
    target = targets.new()
    with Ledger.open(target) as ledger:
        arm(ledger, _minutes(0))
        assert not has_table(ledger, "timer_leases")  # made by the first claim, not by open
    with Ledger.open(target, readonly=True) as reader:
        assert _ids(reader.flows(due_before=T0)) == ["f0"]
        with pytest.raises(ReadOnlyLedger):
            reader.claim_due(T0, lease=30, owner="r")
        with pytest.raises(ReadOnlyLedger):
            reader.release_claims(["f0"], owner="r")
        assert not has_table(reader, "timer_leases")


def test_bad_arguments_are_refused(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, _minutes(0))
        with pytest.raises(ValueError, match="lease"):
            ledger.claim_due(T0, lease=0, owner="a")
        assert ledger.claim_due(T0, limit=0, lease=30, owner="a") == []


def test_an_idle_claim_takes_no_lock_and_postgresql_claims_never_take_the_ledgers(
    targets: Targets,
) -> None:
    target = targets.new()
    with Ledger.open(target, busy_timeout=0.3) as ledger, Ledger.open(target) as other:
        arm(ledger, {"f0": T0 + MINUTE})
        with held_in_a_thread(other.transaction):
            started = time.monotonic()
            assert ledger.claim_due(T0, lease=30, owner="a") == []  # nothing due: a read
            assert time.monotonic() - started < 0.3
            if targets.postgres:  # row locks only: a writer elsewhere is no obstacle
                assert _ids(ledger.claim_due(T0 + MINUTE, lease=30, owner="a")) == ["f0"]
            else:  # SQLite serialises every writer, claims too
                with pytest.raises(LockTimeout):
                    ledger.claim_due(T0 + MINUTE, lease=30, owner="a")


def test_two_threads_claiming_at_once_take_disjoint_sets(targets: Targets) -> None:
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, {f"f{n:03}": T0 + timedelta(seconds=n) for n in range(120)})
        start = threading.Barrier(2)
        claimed: dict[str, list[str]] = {}

        def claimer(owner: str) -> None:
            ledger.flows()  # this thread's connection, before the race starts
            start.wait()
            mine = claimed.setdefault(owner, [])
            while rows := ledger.claim_due(T0 + MINUTE * 5, limit=3, lease=60, owner=owner):
                mine += _ids(rows)

        threads = [threading.Thread(target=claimer, args=(name,)) for name in "ab"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        a, b = claimed["a"], claimed["b"]
        assert not set(a) & set(b)
        assert sorted(a + b) == [f"f{n:03}" for n in range(120)]
        assert {flow_id: owner for flow_id, (owner, _) in leases(ledger).items()} == {
            **dict.fromkeys(a, "a"),
            **dict.fromkeys(b, "b"),
        }


@pytest.mark.slow
def test_four_claimer_processes_claim_each_due_flow_exactly_once(targets: Targets) -> None:
    """The "no stampede" property: in a round every due flow goes to exactly one claimer."""
    target = targets.new()
    due = {f"f{n:03}": T0 + timedelta(seconds=n % 50) for n in range(400)}
    with Ledger.open(target) as ledger:
        arm(ledger, {**due, "later": T0 + timedelta(days=1), "never": None})
    now = (T0 + MINUTE).isoformat()
    command = [sys.executable, WORKER, "claim", target]
    outs = run_together([[*command, f"w{n}", now, "2"] for n in range(4)], ENV)
    claimed = [msgspec.json.decode(out) for out in outs]
    every = [flow_id for mine in claimed for flow_id in mine]
    assert sorted(every) == sorted(due)  # each due flow once, by exactly one claimer
    assert sum(1 for mine in claimed if mine) >= 2  # they did claim at once (not in turn)
    with Ledger.open(target) as ledger:
        owners = {flow_id: owner for flow_id, (owner, _) in leases(ledger).items()}
        for n, mine in enumerate(claimed):
            assert {owners[flow_id] for flow_id in mine} <= {f"w{n}"}
        assert ledger.verify().ok


def test_a_postgresql_claim_skips_rows_another_transaction_locks_without_waiting(
    targets: Targets,
) -> None:
    if not targets.postgres:
        pytest.skip("row locks and SKIP LOCKED are PostgreSQL's (SQLite serialises writers)")
    psycopg = pytest.importorskip("psycopg")
    target = targets.new()
    with Ledger.open(target, busy_timeout=2.0) as ledger:
        arm(ledger, _minutes(0, 1, 2))
        with psycopg.connect(target) as other:  # a transaction: holds its lock until the end
            other.execute("SELECT 1 FROM flows WHERE flow_id = 'f0' FOR UPDATE")
            started = time.monotonic()
            assert _ids(ledger.claim_due(T0 + 5 * MINUTE, lease=30, owner="a")) == ["f1", "f2"]
            assert time.monotonic() - started < 1.0
            other.rollback()
        assert _ids(ledger.claim_due(T0 + 5 * MINUTE, lease=30, owner="b")) == ["f0"]


# -- for all: claims and releases against a model of the leases -----------------------

Op = tuple[str, str, int, int, int | None]  # (claim|release, owner, minute, lease s, limit)
ops = st.lists(
    st.tuples(
        st.sampled_from(["claim", "claim", "release"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 12),
        st.sampled_from([60, 150, 400]),
        st.none() | st.integers(1, 3),
    ),
    max_size=12,
)
dues = st.lists(st.none() | st.integers(0, 10), min_size=1, max_size=6)


def _model_claim(
    due: dict[str, datetime | None], held: dict[str, tuple[str, datetime]], op: Op
) -> list[str]:
    _, owner, minute, lease, limit = op
    now = T0 + minute * MINUTE
    order = list(due)
    free = [
        flow_id
        for flow_id, at in sorted(
            due.items(), key=lambda item: (item[1] or now, order.index(item[0]))
        )
        if at is not None and at <= now and not (flow_id in held and held[flow_id][1] > now)
    ][:limit]
    for flow_id in free:
        held[flow_id] = (owner, now + timedelta(seconds=lease))
    return free


def test_for_all_claims_and_releases_a_claim_takes_what_no_lease_holds(targets: Targets) -> None:
    @settings(
        max_examples=targets.examples(40),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(offsets=dues, plays=ops)
    def check(offsets: list[int | None], plays: list[Op]) -> None:
        due = _minutes(*offsets)
        held: dict[str, tuple[str, datetime]] = {}
        with targets.fresh("claims") as target, Ledger.open(target, synchronous="NORMAL") as ledger:
            arm(ledger, due)
            for op in plays:
                kind, owner, minute, lease, limit = op
                if kind == "release":
                    mine = [f for f, (o, _) in held.items() if o == owner]
                    assert ledger.release_claims(list(due), owner=owner) == len(mine)
                    held = {f: h for f, h in held.items() if h[0] != owner}
                    continue
                now = T0 + minute * MINUTE
                got = ledger.claim_due(now, limit=limit, lease=lease, owner=owner)
                assert _ids(got) == _model_claim(due, held, op)
            assert ledger.verify().ok

    check()


def test_a_row_picked_from_a_stale_snapshot_is_not_leased_over_a_live_lease(
    targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL a pick's snapshot may predate a rival's committed lease; the upsert,
    which sees the latest lease, must then refuse the row (here the pick ignores leases)."""
    with Ledger.open(targets.new()) as ledger:
        arm(ledger, _minutes(0, 0))
        ledger.claim_due(T0, limit=1, lease=30, owner="a")
        stale = timer_claims._PICK.replace("l.until > ?", "l.until > ? AND 1 = 0")
        monkeypatch.setattr(timer_claims, "_PICK", stale)
        assert _ids(ledger.claim_due(T0, lease=30, owner="b")) == ["f1"]
        assert {flow_id: owner for flow_id, (owner, _) in leases(ledger).items()} == {
            "f0": "a",
            "f1": "b",
        }
