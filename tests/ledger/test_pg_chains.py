"""PostgreSQL's two chains against the real server: per-key locks, the sequencer, verify.

Writers on different keys commit at once; the sequencer puts their events in one gapless
global chain in an order that never changes once read, and respects every stream's order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from ledger_helpers import Balances, Deposited
from pg import fresh_schema

from ledger import Ledger, TransactionConflict
from ledger.postgres import PgConn
from ledger.sequencer import covers, lock_key, sequence_batch


@pytest.fixture
def dsn() -> Iterator[str]:
    with fresh_schema() as target:
        yield target


@pytest.fixture
def lone_dsn() -> Iterator[str]:
    """For a test that holds a transaction open: the sequencer's line is server-wide."""
    with fresh_schema(alone=True) as target:
        yield target


def raw(dsn: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(dsn, autocommit=True)


def chain(dsn: str) -> list[tuple[int, int]]:
    with raw(dsn) as conn:
        return [
            (int(s), int(p))
            for s, p in conn.execute("SELECT seq, position FROM chain ORDER BY seq")
        ]


def test_writers_on_different_keys_do_not_wait_for_each_other(dsn: str) -> None:
    """One transaction holds account:a open; another commits account:b meanwhile."""
    with (
        Ledger.open(dsn, projections=[Balances()]) as first,
        Ledger.open(dsn, projections=[Balances()]) as second,
    ):
        holding, done = threading.Event(), threading.Event()

        def hold_a() -> None:
            with first.transaction():
                first.append("account:a", [Deposited("a", 1)])
                holding.set()
                done.wait(10)

        thread = threading.Thread(target=hold_a)
        thread.start()
        assert holding.wait(10)
        started = time.monotonic()
        second.append("account:b", [Deposited("b", 2)])  # would wait behind a global lock
        waited = time.monotonic() - started
        done.set()
        thread.join()
        assert waited < 5
        # chained in the order the writers began writing (a's transaction is the older)
        assert first.sync() and [r.stream for r in first.read_all()] == ["account:a", "account:b"]
        assert first.verify().ok


def test_an_event_is_not_chained_before_an_older_transaction_ends(lone_dsn: str) -> None:
    """The line is the oldest open writer: a later commit waits for it, then follows it."""
    Ledger.open(lone_dsn).close()
    with raw(lone_dsn) as older, raw(lone_dsn) as newer, raw(lone_dsn) as seq_raw:
        seq = PgConn(seq_raw, lone_dsn)
        older.execute("BEGIN")
        older.execute(
            "INSERT INTO events (stream, version, type, data, recorded_at, hash)"
            " VALUES ('s:old', 1, 'T', '{}', 't', 'h')"
        )
        newer.execute(
            "INSERT INTO events (stream, version, type, data, recorded_at, hash)"
            " VALUES ('s:new', 1, 'T', '{}', 't', 'h')"
        )
        assert sequence_batch(seq, "x") == 0  # the newer one is committed, but not chained
        assert not covers(seq)
        older.execute("COMMIT")
        sequence_batch(seq, "x")  # (the closed ledger's last pass may have been quicker)
        assert covers(seq)
    with raw(lone_dsn) as conn:
        streams = conn.execute(
            "SELECT e.stream FROM chain c JOIN events e USING (position) ORDER BY c.seq"
        ).fetchall()
    assert streams == [("s:old",), ("s:new",)]  # the older transaction's event first


def test_one_leader_chains_gaplessly_while_many_write(dsn: str) -> None:
    """Four ledgers (four sequencer threads) and eight writer threads: one chain, no gap."""
    ledgers = [Ledger.open(dsn, projections=[Balances()]) for _ in range(4)]
    try:

        def write(index: int) -> None:
            ledger = ledgers[index % 4]
            for n in range(25):
                ledger.append(f"account:{index}", [Deposited(str(index), n)])

        threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert ledgers[0].sync()
        leaders = [ledger.sequencer.leader for ledger in ledgers]  # type: ignore[attr-defined]
        assert sum(leaders) <= 1
        entries = chain(dsn)
        assert [s for s, _ in entries] == list(range(1, 201))
        assert len({p for _, p in entries}) == 200
        for index in range(8):  # each stream's versions in order along the chain
            amounts = [r.data for r in ledgers[0].read_all() if r.stream == f"account:{index}"]
            assert len(amounts) == 25
        report = ledgers[1].verify()
        assert report.ok and report.events == 200 and report.pending == 0
    finally:
        for ledger in ledgers:
            ledger.close()


def test_a_clean_close_leaves_nothing_unchained(dsn: str) -> None:
    with Ledger.open(dsn) as ledger:
        for n in range(30):
            ledger.append("account:a", [Deposited("a", n)])
    assert len(chain(dsn)) == 30
    with Ledger.open(dsn, readonly=True) as reader:
        assert reader.verify().pending == 0


def test_verify_reports_events_the_sequencer_has_not_reached(lone_dsn: str) -> None:
    """Pending events are checked on their stream links, counted, and not an error."""
    Ledger.open(lone_dsn).close()
    with raw(lone_dsn) as blocker, Ledger.open(lone_dsn) as ledger:
        blocker.execute("BEGIN")
        blocker.execute("SELECT pg_current_xact_id()")  # an open writer holds the line
        ledger.append("account:a", [Deposited("a", 1)])
        assert not ledger.sync(timeout=0.3)
        report = ledger.verify()
        assert report.ok and report.events == 1 and report.pending == 1
        blocker.execute("ROLLBACK")
        assert ledger.sync()
        assert ledger.verify().pending == 0


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE chain SET hash = repeat('0', 64) WHERE seq = 2",
        "DELETE FROM chain WHERE seq = 2",
        "UPDATE events SET data = replace(data, '1', '7') WHERE stream = 'account:b'",
        "UPDATE chain SET position = position + 1000 WHERE seq = 3",
    ],
)
def test_an_edit_behind_the_triggers_is_flagged(dsn: str, edit: str) -> None:
    with Ledger.open(dsn, projections=[Balances()]) as ledger:
        for stream in ("account:a", "account:b", "account:a", "account:c"):
            ledger.append(stream, [Deposited(stream[-1], 1)])
        assert ledger.verify().ok
        with raw(dsn) as conn:
            conn.execute("SET session_replication_role = replica")  # triggers off
            conn.execute(edit)
        report = ledger.verify()
        assert not report.ok and (report.broken is not None or report.gaps)


def test_the_triggers_refuse_changes_to_the_chain(dsn: str) -> None:
    with Ledger.open(dsn) as ledger:
        ledger.append("account:a", [Deposited("a", 1)])
        assert ledger.sync()
    with raw(dsn) as conn:
        for statement in ("UPDATE chain SET hash = 'x'", "DELETE FROM chain", "TRUNCATE chain"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)


def test_a_late_lock_that_would_reorder_a_stream_is_refused(dsn: str) -> None:
    """A transaction that wrote first, then appends to a stream a younger one moved since:
    its event would precede its own predecessor in the global chain, so it is refused
    (`TransactionConflict`, nothing written) and succeeds when run again."""
    with Ledger.open(dsn) as early, Ledger.open(dsn) as late:
        late.append("account:s", [Deposited("s", 0)])
        with pytest.raises(TransactionConflict), early.transaction():
            early.append("account:x", [Deposited("x", 1)])  # this transaction's id is older
            late.append("account:s", [Deposited("s", 1)])  # a younger one moves account:s
            early.append("account:s", [Deposited("s", 2)])
        assert [e.amount for e in early.read("account:s", Deposited)] == [0, 1]
        assert early.read("account:x", Deposited) == []
        with early.transaction():  # run again: nothing younger has moved account:s since
            early.append("account:x", [Deposited("x", 1)])
            early.append("account:s", [Deposited("s", 2)])
        assert early.verify().ok


def test_a_read_under_the_lock_does_not_let_a_reordering_append_through(dsn: str) -> None:
    """Reading a stream in the transaction remembers its tip for the next append, unless a
    younger transaction wrote that tip: then the append is refused as without the read."""
    with Ledger.open(dsn) as early, Ledger.open(dsn) as late:
        with pytest.raises(TransactionConflict), early.transaction():
            early.append("account:x", [Deposited("x", 1)])  # this transaction's id is older
            late.append("account:s", [Deposited("s", 1)])
            assert [e.amount for e in early.read("account:s", Deposited)] == [1]
            early.append("account:s", [Deposited("s", 2)])
        with early.transaction():  # a read of a tip no younger one wrote: one probe fewer
            assert [e.amount for e in early.read("account:s", Deposited)] == [1]
            early.append("account:s", [Deposited("s", 2)])
        assert [e.amount for e in early.read("account:s", Deposited)] == [1, 2]
        assert early.verify().ok


def test_only_the_sequencer_notifies_and_a_follower_wakes_on_it(lone_dsn: str) -> None:
    """A commit sends nothing; the batch that chains it sends one NOTIFY, which wakes
    `wait_for_events` (tail --follow and the worker wait on it)."""
    schema = lone_dsn.rsplit("search_path%3D", 1)[1].split("&", 1)[0]
    with (
        Ledger.open(lone_dsn) as writer,
        Ledger.open(lone_dsn, readonly=True) as follower,
        raw(lone_dsn) as listening,
        raw(lone_dsn) as blocker,
    ):
        listening.execute("LISTEN orderflow_chain")
        blocker.execute("BEGIN")
        blocker.execute("SELECT pg_current_xact_id()")  # holds the sequencer back
        writer.append("account:a", [Deposited("a", 1)])
        assert list(listening.notifies(timeout=0.5, stop_after=1)) == []  # the commit: none
        assert not follower.wait_for_events(0, timeout=0.2)
        blocker.execute("ROLLBACK")
        notes = list(listening.notifies(timeout=10, stop_after=1))
        assert [n.payload for n in notes] == [f"{schema} 1"]
        assert follower.wait_for_events(0, timeout=10)
        assert not follower.wait_for_events(1, timeout=0.2)


def test_wait_for_events_on_sqlite_sees_another_connections_commit(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    with Ledger.open(path) as writer, Ledger.open(path, readonly=True) as follower:
        assert not follower.wait_for_events(0, timeout=0.15)
        writer.append("account:a", [Deposited("a", 1)])
        assert follower.wait_for_events(0, timeout=5)


def test_a_rebuild_keeps_writers_out_until_it_commits(dsn: str) -> None:
    """Without the global lock a rebuild must still be alone: an append waits for it."""
    with (
        Ledger.open(dsn, projections=[Balances()]) as ledger,
        Ledger.open(dsn, projections=[Balances()]) as other,
    ):
        for n in range(20):
            ledger.append("account:a", [Deposited("a", n)])
        appended = threading.Event()

        def append() -> None:
            other.append("account:b", [Deposited("b", 5)])
            appended.set()

        with ledger.transaction():
            ledger._keep_writers_out(ledger._s.conn)  # what rebuild() and copy_to() begin with
            thread = threading.Thread(target=append)
            thread.start()
            assert not appended.wait(0.5)  # it waits at its INSERT
        thread.join(10)
        assert appended.is_set()
        assert ledger.rebuild() == 21
        assert ledger.query("SELECT amount FROM balances WHERE account = 'b'") == [(5,)]
        assert ledger.verify().ok


def test_a_deadlock_is_a_transaction_conflict_with_nothing_written(dsn: str) -> None:
    """Two transactions locking two keys in opposite orders: the server ends one of them."""
    with Ledger.open(dsn) as first, Ledger.open(dsn) as second:
        both_hold = threading.Barrier(2, timeout=10)
        outcomes: dict[str, str] = {}

        def run(ledger: Ledger, name: str, keys: tuple[str, str]) -> None:
            try:
                with ledger.transaction():
                    ledger.lock(keys[0])
                    ledger.append(f"account:{name}", [Deposited(name, 1)])
                    both_hold.wait()
                    ledger.lock(keys[1])
                outcomes[name] = "committed"
            except TransactionConflict:
                outcomes[name] = "conflict"

        threads = [
            threading.Thread(target=run, args=(first, "p", ("k1", "k2"))),
            threading.Thread(target=run, args=(second, "q", ("k2", "k1"))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes.values()) == ["committed", "conflict"]
        loser = next(name for name, outcome in outcomes.items() if outcome == "conflict")
        assert first.read(f"account:{loser}", Deposited) == []
        assert first.verify().ok


def _waiting_for_a_lock(dsn: str) -> bool:
    with raw(dsn) as conn:
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        return bool(conn.execute(waiting).fetchone()[0])  # type: ignore[index]


def test_keys_locked_at_once_are_taken_in_name_order(dsn: str) -> None:
    """A step holds `flow:x` and then takes `order:x`; a settle locks both at once. Taken
    in hash order the settle could hold `order:x` while it waits for `flow:x`: a deadlock.
    In name order it waits without holding either, and both commit."""
    with Ledger.open(dsn) as step, Ledger.open(dsn) as settle:
        schema = settle.schema  # type: ignore[attr-defined]
        order = next(  # an order whose keys' hashes sort the other way round
            n
            for n in range(100)
            if lock_key(schema, f"order:o{n}") < lock_key(schema, f"flow:o{n}")
        )
        flow_key, order_key = f"flow:o{order}", f"order:o{order}"
        outcome: list[str] = []

        def settle_both() -> None:
            try:
                with settle.transaction():
                    settle.lock(order_key, flow_key)
                    settle.append("account:settle", [Deposited("settle", 1)])
                outcome.append("committed")
            except TransactionConflict:
                outcome.append("conflict")

        with step.transaction():
            step.lock(flow_key)
            thread = threading.Thread(target=settle_both)
            thread.start()
            deadline = time.monotonic() + 10
            while not _waiting_for_a_lock(dsn) and time.monotonic() < deadline:
                time.sleep(0.01)
            step.lock(order_key)  # the settle holds nothing yet: granted at once
            step.append("account:step", [Deposited("step", 1)])
        thread.join(30)
        assert outcome == ["committed"]
        assert step.sync()  # the settle's commit may not be chained yet
        assert [r.stream for r in step.read_all()] == ["account:step", "account:settle"]


def test_the_chain_orders_transaction_ids_as_numbers(dsn: str) -> None:
    """Ids 9 and 10 (as 999 and 1000 on a busy server): 9 first, though '10' < '9' as text."""
    Ledger.open(dsn).close()
    with raw(dsn) as conn:
        for xid, stream in (("10", "s:ten"), ("9", "s:nine")):
            conn.execute(
                "INSERT INTO events (stream, version, type, data, recorded_at, hash, xid)"
                " VALUES (%s, 1, 'T', '{}', 't', 'h', %s::xid8)",
                (stream, xid),
            )
        assert sequence_batch(PgConn(conn, dsn), "x") == 2
        assert covers(PgConn(conn, dsn))
        streams = conn.execute(
            "SELECT e.stream FROM chain c JOIN events e USING (position) ORDER BY c.seq"
        ).fetchall()
    assert streams == [("s:nine",), ("s:ten",)]
