"""Real processes: concurrent writers, a same-stream race, and kill -9 mid-work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from ledger_helpers import Deposited

from ledger import Ledger

WORKER = str(Path(__file__).with_name("ledger_worker.py"))
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}


def _start(*args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


@pytest.mark.slow
def test_concurrent_writers_lose_and_duplicate_nothing(target: str) -> None:
    Ledger.open(target).close()
    names, count = ["w0", "w1", "w2", "w3", "w4"], 120
    workers = [_start("spread", target, name, str(count)) for name in names]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert out.strip() == "done" and "locked" not in err
    with Ledger.open(target) as ledger:
        records = list(ledger.read_all())
        assert [r.cursor for r in records] == list(range(1, len(names) * count + 1))
        assert len({r.position for r in records}) == len(records)
        shared = ledger.read("shared", Deposited)
        for name in names:
            private = ledger.read(f"private:{name}", Deposited)
            assert [e.amount for e in private] == list(range(1, count, 2))
            assert [e.amount for e in shared if e.account == name] == list(range(0, count, 2))
        assert ledger.verify().ok


@pytest.mark.slow
def test_two_processes_racing_on_one_stream_one_wins(target: str) -> None:
    with Ledger.open(target) as ledger:
        ledger.append("hot", [Deposited("seed", 0)])
    racers = [_start("race", target, "hot", stdin=subprocess.PIPE) for _ in range(2)]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    outcomes = [racer.communicate("go\n", timeout=60) for racer in racers]
    assert sorted(out.strip() for out, _ in outcomes) == ["conflict", "won"]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outcomes]
    with Ledger.open(target) as ledger:
        assert ledger.version("hot") == 2
        assert ledger.verify().ok


@pytest.mark.slow
@pytest.mark.parametrize("acks", [1, 40, 150])
def test_kill_9_mid_work_loses_no_acknowledged_append(target: str, acks: int) -> None:
    worker = _start("loop", target)
    assert worker.stdout is not None
    acked = [worker.stdout.readline().split() for _ in range(acks)]
    os.kill(worker.pid, signal.SIGKILL)
    rest, _ = worker.communicate(timeout=30)
    acked += [line.split() for line in rest.splitlines() if line.startswith("acked")]
    assert worker.returncode == -signal.SIGKILL
    with Ledger.open(target) as ledger:
        report = ledger.verify()
        assert report.ok, report
        by_position = {r.position: r for r in ledger.read_all()}
        for _, position, stream, version in acked:
            record = by_position[int(position)]
            assert (record.stream, record.version, record.type) == (
                stream,
                int(version),
                "StepPending",
            )
        waiting = {row.flow_id for row in ledger.flows(status="waiting")}
        assert {stream.removeprefix("flow:") for _, _, stream, _ in acked} <= waiting
        assert report.events % 2 == 0  # each flow's two events committed together or not at all
