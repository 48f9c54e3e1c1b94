"""Group commit's queue: concurrent submitters share batches, each gets its own answer,
batches never overlap nor exceed the limit, and a failed batch answers all of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.batching import Batcher


class Writer:
    """A `write` that notices overlapping calls and can be made to fail on some items."""

    def __init__(self, fail_on: frozenset[int] = frozenset(), pause: float = 0.0) -> None:
        self.fail_on, self.pause = fail_on, pause
        self.batches: list[list[int]] = []
        self._busy = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        assert self._busy.acquire(blocking=False), "two batches were written at once"
        try:
            time.sleep(self.pause)  # long enough for others to queue up behind it
            self.batches.append(list(items))
            if self.fail_on & set(items):
                raise OSError(f"disk full in a batch of {len(items)}")
            return [item * 10 for item in items]
        finally:
            self._busy.release()


def _submit_all(batcher: Batcher[int, int], items: list[int]) -> dict[int, object]:
    answers: dict[int, object] = {}
    start = threading.Barrier(len(items))

    def one(item: int) -> None:
        start.wait()
        answers[item] = batcher.submit(item)

    threads = [threading.Thread(target=one, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


@settings(max_examples=20, deadline=None)
@given(count=st.integers(1, 40), limit=st.integers(1, 8), failing=st.sets(st.integers(0, 39)))
def test_every_submitter_gets_its_own_answer_from_batches_within_the_limit(
    count: int, limit: int, failing: set[int]
) -> None:
    writer = Writer(frozenset(failing), pause=0.002)
    batcher: Batcher[int, int] = Batcher(writer, limit=limit)
    answers = _submit_all(batcher, list(range(count)))
    assert sorted(answers) == list(range(count))  # nobody was left waiting
    written = [item for batch in writer.batches for item in batch]
    assert sorted(written) == list(range(count))  # each item written exactly once
    for batch in writer.batches:
        assert 1 <= len(batch) <= limit
        for item in batch:
            if failing & set(batch):
                assert isinstance(answers[item], OSError)  # the whole batch was undone
            else:
                assert answers[item] == item * 10


def test_concurrent_submitters_share_commits() -> None:
    writer = Writer(pause=0.02)
    batcher: Batcher[int, int] = Batcher(writer, limit=64)
    answers = _submit_all(batcher, list(range(32)))
    assert answers == {item: item * 10 for item in range(32)}
    assert len(writer.batches) < 32 and batcher.largest > 1


def test_a_batch_holds_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Batcher(Writer(), limit=0)
