"""Races: processes released at once (`run_together`), a block run while a thread holds.

`run_together`: each child prints "ready" once it is set up, then waits for a line on
stdin; every child is told "go" before any is waited for.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager


def run_together(
    commands: Sequence[Sequence[str]], env: Mapping[str, str], timeout: float = 180
) -> list[str]:
    """Run `commands` released together; each one's stdout (all must exit 0)."""
    procs = [
        subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        for command in commands
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outcomes = [proc.communicate(timeout=timeout) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outcomes]
    return [out for out, _ in outcomes]


@contextmanager
def held_in_a_thread(hold: Callable[[], AbstractContextManager[object]]) -> Iterator[None]:
    """`hold()` entered in another thread and held there until the block ends (a write
    transaction, say, so that the block runs while another writer holds the lock)."""
    entered, release = threading.Event(), threading.Event()

    def holder() -> None:
        with hold():
            entered.set()
            release.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    entered.wait()
    try:
        yield
    finally:
        release.set()
        thread.join()
