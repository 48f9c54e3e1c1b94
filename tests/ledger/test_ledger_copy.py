"""`Ledger.copy_to`: a whole ledger copied between backends, verified on both ends.

Between SQLite files the copy is bit for bit (positions and hashes); across backends the
events' content and order are the source's and the destination links them its own way.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_helpers import Balances, Deposited, Withdrawn, state, tamper
from pg import fresh_schema

from flowlib.log import FlowEnded, FlowStarted, StepDone, StepPending, stream_of
from flowlib.log import Ok as Answered
from ledger import (
    Anchor,
    ChainBroken,
    CopyProgress,
    DestinationNotEmpty,
    IdempotencyConflict,
    InvalidAppend,
    Ledger,
    OpenError,
    Record,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RAW = msgspec.Raw(b"{}")
PAIRS = [("sqlite", "postgres"), ("postgres", "sqlite"), ("sqlite", "sqlite")]


def content(records: list[Record]) -> list[tuple[object, ...]]:
    """What a copy keeps on any backend: each event's stream, version, type, body, time, key."""
    return [
        (r.stream, r.version, r.type, r.data, r.recorded_at, r.idempotency_key) for r in records
    ]


def alike(copy: Ledger, source: Ledger) -> bool:
    """True if the two chain alike (both SQLite): then a copy keeps positions and hashes."""
    return copy.dialect == source.dialect == "sqlite"


@pytest.fixture(params=PAIRS, ids=lambda pair: f"{pair[0]}-to-{pair[1]}")
def ends(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(source, destination) targets on the backends the test is run for."""

    def one(backend: str, name: str) -> str:
        return str(tmp_path / name) if backend == "sqlite" else request.getfixturevalue("pg_dsn")

    return one(request.param[0], "source.db"), one(request.param[1], "copy.db")


@pytest.fixture
def source_path(tmp_path: Path) -> Path:
    """A SQLite source file (the destination is the `target` fixture, on either backend)."""
    return tmp_path / "source.db"


def fill(ledger: Ledger, *, accounts: int = 20) -> None:
    """Accounts, flows, keyed batches and one transaction of several appends."""
    ledger.append("account:a", [Deposited("a", 10), Withdrawn("a", 3)], idempotency_key="pay-1")
    ledger.append("account:b", [Deposited("b", 5)])
    started = FlowStarted(flow_id="f1", name="order", version=1, args=RAW, started_at=T0)
    pending = StepPending(
        seq=0, request=RAW, mode="await", status="waiting", awaits=["AwaitPayment", "Timer"],
        due=T0 + timedelta(minutes=30),
    )  # fmt: skip
    ledger.append(stream_of("f1"), [started, pending], expected_version=0)
    with ledger.transaction():
        ledger.append("account:a", [Deposited("a", 1)], expected_version=2)
        ledger.append(stream_of("f2"), [msgspec.structs.replace(started, flow_id="f2")])
        ledger.append(stream_of("f2"), [StepDone(seq=0, request=RAW, outcome=Answered(RAW))])
        ledger.append(stream_of("f2"), [FlowEnded(status="completed", result=RAW)])
    for index in range(accounts):
        ledger.append(f"account:{'abc'[index % 3]}", [Deposited("abc"[index % 3], index)])


def hash_at(ledger: Ledger, position: int) -> str:
    return next(ledger.read_all(after=position - 1, limit=1)).hash


def assert_same(source: Ledger, copy: Ledger) -> None:
    """Every event, every stream's records, the flows index and the balances are equal."""
    events = list(source.read_all())
    same = content if not alike(copy, source) else list
    assert same(list(copy.read_all())) == same(events)
    for stream in {record.stream for record in events}:
        assert same(copy.records(stream)) == same(source.records(stream))
    assert copy.flows() == source.flows()
    balances = "SELECT account, amount FROM balances ORDER BY account"
    assert copy.query(balances) == source.query(balances)
    assert source.verify().ok
    assert copy.verify().ok


def test_the_copy_is_the_source_bit_for_bit(ends: tuple[str, str]) -> None:
    source_target, destination = ends
    with Ledger.open(source_target, projections=[Balances()]) as source:
        fill(source)
        anchor = Anchor(5, hash_at(source, 5))
        steps: list[CopyProgress] = []
        report = source.copy_to(destination, batch_size=7, progress=steps.append)
        total = source.count()
        assert report.events == total == report.verified.events
        assert report.source_head == source.head()
        assert report.destination_head[0] == source.head()[0] == total
        kept = source_target.endswith(".db") and destination.endswith(".db")
        if kept:  # SQLite to SQLite: the same chain, so the same head and anchors
            assert report.destination_head == source.head()
        assert report.verified.ok
        assert report.verified.anchor == (Anchor(*source.head()) if kept else None)
        assert [s.stage for s in steps] == [
            "checked",
            *["copied"] * -(-total // 7),
            "verified",
            "committed",
        ]
        assert [s.events for s in steps if s.stage == "copied"][-1] == total
        with Ledger.open(destination, projections=[Balances()]) as copy:
            assert_same(source, copy)
            if kept:
                assert copy.verify(expect_head=anchor).ok  # an anchor noted on the source
            again = copy.append_batch(
                "account:a", [Deposited("a", 10), Withdrawn("a", 3)], idempotency_key="pay-1"
            )
            assert again.repeated and again.first_position == 1  # the keys came along
            version = source.version("account:a")
            assert copy.append("account:a", [Deposited("a", 2)], expected_version=version) == (
                version + 1
            )
            assert copy.verify().ok  # and the copy goes on as a ledger of its own


def test_the_copy_ends_at_the_head_seen_at_its_start(ends: tuple[str, str]) -> None:
    """A writer going on during the copy: the copy is the snapshot's, never a torn one."""
    source_target, destination = ends
    with (
        Ledger.open(source_target, projections=[Balances()]) as source,
        Ledger.open(source_target, projections=[Balances()]) as writer,
    ):
        fill(source)
        head = source.head()

        def write_meanwhile(step: CopyProgress) -> None:
            if step.stage == "copied":  # committed on the source while the copy reads
                writer.append("account:z", [Deposited("z", step.events)])

        report = source.copy_to(destination, batch_size=5, progress=write_meanwhile)
        assert report.source_head == head and report.destination_head[0] == head[0]
        assert source.count() > head[0]
        assert source.verify().ok
        with Ledger.open(destination, projections=[Balances()]) as copy:
            copied, seen = list(copy.read_all()), list(source.read_all(limit=head[0]))
            assert (content if not alike(copy, source) else list)(copied) == (
                content if not alike(copy, source) else list
            )(seen)
            assert copy.query("SELECT amount FROM balances WHERE account = 'z'") == []
            assert copy.verify().ok


def test_a_broken_source_is_refused_with_its_position(source_path: Path, target: str) -> None:
    with Ledger.open(source_path) as source:
        fill(source)
    tamper(source_path, "UPDATE events SET data = replace(data, '10', '99') WHERE position = 1")
    with Ledger.open(source_path) as source, pytest.raises(ChainBroken) as refused:
        source.copy_to(target)
    assert refused.value.position == 1
    if not target.startswith("postgresql"):
        assert not Path(target).exists()  # not even created
    else:
        with pytest.raises(OpenError):  # no ledger in the schema
            Ledger.open(target, readonly=True)


def test_a_destination_with_events_is_refused_unchanged(source_path: Path, target: str) -> None:
    with Ledger.open(source_path, projections=[Balances()]) as source:
        fill(source)
        with Ledger.open(target) as destination:
            destination.append("other:x", [Deposited("x", 1)])
            before = state(destination)
        with pytest.raises(DestinationNotEmpty) as refused:
            source.copy_to(target)
        assert (refused.value.events, refused.value.head) == (1, before[0])
    with Ledger.open(target) as destination:
        assert state(destination) == before
    with pytest.raises(OpenError):  # the source's projection was not set up there either
        Ledger.open(target, readonly=True, projections=[Balances()])


def test_an_empty_source_copies_nothing(source_path: Path, target: str) -> None:
    with Ledger.open(source_path) as source:
        report = source.copy_to(target)
    assert (report.events, report.destination_head) == (0, (0, "0" * 64))
    assert report.verified.ok


def test_restore_stores_only_records_that_extend_the_chain(target: str, tmp_path: Path) -> None:
    """The backends' verbatim insert: each record must link to the head, else nothing."""
    with contextlib.ExitStack() as stack:  # a source on the destination's backend
        pg = target.startswith("postgresql")
        place = stack.enter_context(fresh_schema()) if pg else str(tmp_path / "s.db")
        source = stack.enter_context(Ledger.open(place))
        fill(source, accounts=2)
        records = list(source.read_all())
    with Ledger.open(target, projections=[]) as destination:
        refuse_in_pg = "version 2 does not follow version 0"
        with pytest.raises(ValueError, match="write transaction"):
            destination._restore(records)
        with destination.transaction():
            follow = refuse_in_pg if destination.dialect == "postgresql" else "position 2 does"
            with pytest.raises(InvalidAppend, match=follow):
                destination._restore(records[1:])
            changed = msgspec.structs.replace(records[0], data=b'{"type":"Deposited"}')
            with pytest.raises(ChainBroken):
                destination._restore([changed, *records[1:]])
            assert destination.count() == 0
            destination._restore(records[:3])  # the transaction is intact: go on
            destination._restore(records[3:])
        assert content(list(destination.read_all())) == content(records)
        assert [r.cursor for r in destination.read_all()] == list(range(1, len(records) + 1))
        assert destination.verify().ok


KILLED_COPY = """
import sys
from ledger import Ledger

def hold(step):
    if step.stage == "copied" and step.events >= 60:
        print("copied", step.events, flush=True)
        sys.stdin.read()  # held here, inside the destination's transaction, until killed

with Ledger.open(sys.argv[1], readonly=True) as source:
    source.copy_to(sys.argv[2], batch_size=20, progress=hold)
print("finished", flush=True)
"""


def test_a_copy_killed_midway_leaves_the_destination_empty(source_path: Path, target: str) -> None:
    """kill -9 after three batches: nothing of them is visible, and the copy runs again."""
    with Ledger.open(source_path) as source:
        fill(source, accounts=150)
    argv = [sys.executable, "-c", KILLED_COPY, str(source_path), target]
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        line = child.stdout.readline()
        child.kill()
        assert line == "copied 60\n", child.stderr.read()
    assert child.returncode == -9
    with Ledger.open(target) as destination:
        assert (destination.count(), destination.flows()) == (0, [])
        assert destination.verify().ok
    with Ledger.open(source_path) as source:
        report = source.copy_to(target)
        assert report.events == source.count() > 60
        with Ledger.open(target) as copy:
            assert content(list(copy.read_all())) == content(list(source.read_all()))


STREAMS = ["account:a", "account:b", "other:c"]
appends = st.tuples(
    st.sampled_from(STREAMS),
    st.lists(st.integers(0, 9), max_size=3),
    st.none() | st.sampled_from(["k1", "k2", "k3"]),
)
histories = st.lists(st.lists(appends, min_size=1, max_size=4), max_size=8)


def play(ledger: Ledger, history: list[list[tuple[str, list[int], str | None]]]) -> None:
    """Each inner list in one transaction; a refused key repeat undoes only itself."""
    for transaction in history:
        with ledger.transaction():
            for stream, amounts, key in transaction:
                events = [Deposited(stream, amount) for amount in amounts]
                try:
                    with ledger.transaction():
                        ledger.append(stream, events, idempotency_key=key if events else None)
                except IdempotencyConflict:
                    pass


@given(histories)
def test_any_history_copies_to_equal_records(
    history: list[list[tuple[str, list[int], str | None]]],
) -> None:
    """For any appends (streams, batches, keys, transactions), the copy reads the same."""
    with (
        tempfile.TemporaryDirectory() as folder,
        Ledger.open(Path(folder) / "source.db", synchronous="NORMAL") as source,
    ):
        play(source, history)
        report = source.copy_to(Path(folder) / "copy.db", batch_size=3)
        with Ledger.open(Path(folder) / "copy.db") as copy:
            assert list(copy.read_all()) == list(source.read_all())
            for stream in STREAMS:
                assert copy.records(stream) == source.records(stream)
            assert report.verified.ok and copy.verify().ok and source.verify().ok
