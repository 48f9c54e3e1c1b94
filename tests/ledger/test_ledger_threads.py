"""One `Ledger` shared by many threads: a connection each, one write lock, no lost update."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger_helpers import Balances, Deposited
from pg import fresh_schema

from ledger import ConcurrencyError, Ledger, OpenError


def _deposit_checked(ledger: Ledger, account: str, amount: int) -> int:
    """Check-then-act in one transaction: read the stream, append at the version read."""
    with ledger.transaction():
        version = len(ledger.read(f"account:{account}", Deposited))
        return ledger.append(
            f"account:{account}", [Deposited(account, amount)], expected_version=version
        )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@settings(max_examples=8, deadline=None)
@given(
    threads=st.integers(min_value=2, max_value=12),
    plan=st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 9)), min_size=1, max_size=40),
)
def test_any_interleaving_of_threads_loses_no_write(
    tmp_path_factory: pytest.TempPathFactory,
    backend: str,
    threads: int,
    plan: list[tuple[str, int]],
) -> None:
    with contextlib.ExitStack() as stack:
        if backend == "postgres":
            target = stack.enter_context(fresh_schema())
        else:
            target = str(tmp_path_factory.mktemp("threads") / "t.db")
        ledger = stack.enter_context(
            Ledger.open(target, synchronous="NORMAL", projections=[Balances()])
        )
        _interleave(ledger, threads, plan)


def _interleave(ledger: Ledger, threads: int, plan: list[tuple[str, int]]) -> None:
    """Deposit `plan` from `threads` threads (check-then-act each); nothing lost or doubled."""
    with ThreadPoolExecutor(threads) as pool:
        versions = list(pool.map(lambda step: _deposit_checked(ledger, *step), plan))
    for account in "abc":
        mine = [amount for name, amount in plan if name == account]
        events = ledger.read(f"account:{account}", Deposited)
        assert sorted(e.amount for e in events) == sorted(mine)
        rows = ledger.query("SELECT amount FROM balances WHERE account = ?", (account,))
        assert (rows[0][0] if rows else 0) == sum(mine)
    # Every append saw the version it checked: no two threads reached the same one.
    per_account = [(name, v) for (name, _), v in zip(plan, versions, strict=True)]
    assert len(set(per_account)) == len(plan)
    assert ledger.verify().ok


def test_a_stale_read_in_one_thread_conflicts_with_another_threads_append(target: str) -> None:
    with Ledger.open(target) as ledger:
        ledger.append("shared", [Deposited("x", 1)])
        read, appended = threading.Event(), threading.Event()
        outcome: list[str] = []

        def slow() -> None:
            version = ledger.version("shared")
            read.set()
            appended.wait(10)
            try:
                ledger.append("shared", [Deposited("slow", 2)], expected_version=version)
                outcome.append("won")
            except ConcurrencyError:
                outcome.append("conflict")

        worker = threading.Thread(target=slow)
        worker.start()
        read.wait(10)
        ledger.append("shared", [Deposited("fast", 3)], expected_version=1)
        appended.set()
        worker.join(10)
        assert outcome == ["conflict"] and ledger.version("shared") == 2


def test_threads_that_end_leave_no_connection_behind(target: str) -> None:
    with Ledger.open(target) as ledger:
        for n in range(30):  # as a threading server does: a new thread per request
            thread = threading.Thread(target=ledger.append, args=("s", [Deposited("s", n)]))
            thread.start()
            thread.join()
        ledger.append("s", [Deposited("s", 99)])  # a new session sweeps the ended ones
        live = ledger._sessions
        assert len(live) <= 2, f"{len(live)} connections kept for ended threads"
        assert ledger.version("s") == 31


def test_a_transaction_belongs_to_its_thread(target: str) -> None:
    with Ledger.open(target) as ledger:
        inside, release = threading.Event(), threading.Event()
        seen: list[int] = []

        def holder() -> None:
            with ledger.transaction():
                ledger.append("s", [Deposited("s", 1)])
                inside.set()
                release.wait(10)

        worker = threading.Thread(target=holder)
        worker.start()
        inside.wait(10)
        seen.append(ledger.version("s"))  # this thread reads the last commit, not the open one
        release.set()
        worker.join(10)
        seen.append(ledger.version("s"))
        assert seen == [0, 1]


def test_the_memory_ledger_never_joins_another_threads_transaction() -> None:
    ledger = Ledger.memory()
    inside = threading.Event()
    acked: list[int] = []

    def other() -> None:
        inside.wait(10)
        acked.append(ledger.append("b", [Deposited("b", 1)]))  # waits for A's transaction

    worker = threading.Thread(target=other)
    worker.start()
    try:
        with ledger.transaction():
            ledger.append("a", [Deposited("a", 1)])
            inside.set()
            worker.join(0.3)
            assert acked == []  # still waiting: it did not slip into this transaction
            raise RuntimeError("A rolls back")
    except RuntimeError:
        pass
    worker.join(10)
    assert acked == [1] and ledger.version("b") == 1 and ledger.version("a") == 0


def test_a_write_inside_a_read_snapshot_is_refused_and_the_snapshot_kept(target: str) -> None:
    with Ledger.open(target) as ledger:
        ledger.append("a", [Deposited("a", 1)])
        with ledger.reading():
            with pytest.raises(ValueError, match="inside reading"):
                ledger.append("a", [Deposited("a", 2)])
            assert ledger.version("a") == 1
            assert ledger.scrub().ok  # verifies; recording waits for the next check
        assert ledger.version("a") == 1
        if ledger.dialect == "sqlite":
            with ledger.transaction(), pytest.raises(ValueError, match="inside a transaction"):
                ledger.checkpoint()


def test_a_ledger_opened_before_a_fork_refuses_use_in_the_child(target: str) -> None:
    with Ledger.open(target) as ledger:
        ledger.append("a", [Deposited("a", 1)])
        pid = os.fork()
        if pid == 0:  # the child: any use is refused, and nothing of the parent's is touched
            try:
                ledger.append("a", [Deposited("child", 2)])
                code = 1
            except OpenError as exc:
                code = 0 if "before this process forked" in str(exc) else 2
            ledger.close()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ledger.append("a", [Deposited("a", 3)]) == 2  # the parent carries on
        assert ledger.verify().ok


def test_close_waits_for_a_writer_of_this_process(target: str) -> None:
    ledger = Ledger.open(target)
    inside, done = threading.Event(), threading.Event()

    def writer() -> None:
        with ledger.transaction():
            inside.set()
            time.sleep(0.3)
            ledger.append("a", [Deposited("a", 1)])
        done.set()

    worker = threading.Thread(target=writer)
    worker.start()
    inside.wait(10)
    ledger.close()  # after the writer's commit, not in the middle of it
    worker.join(10)
    assert done.is_set()
    with Ledger.open(target, readonly=True) as reader:
        assert reader.version("a") == 1
    with pytest.raises(OpenError, match="closed"):
        ledger.version("a")
