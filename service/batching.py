"""Group commit for concurrent deliveries: whoever arrives while a batch is being written
waits, and goes into the next batch with everyone else who came meanwhile.

No thread of its own: the first delivery to find nobody writing writes (it leads); the
others queue. A leader writes batches of at most `limit` until its own delivery is
answered, then hands the lead to the oldest waiting delivery, so no request serves
others' for long. Each batch is one call of `write` (one transaction, one commit);
if it raises, every delivery in it is answered with that error (nothing of it committed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    def __init__(self, item: T) -> None:
        self.item = item
        self.ready = threading.Event()
        self.lead = False  # woken to write, not with an answer
        self.answer: R | BaseException | None = None
        self.answered = False


class Batcher(Generic[T, R]):
    """Runs `write(items) -> answers` (one answer per item, in order) over waiting items."""

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], *, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a batch holds at least one delivery, not {limit}")
        self._write, self.limit = write, limit
        self._lock = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._writing = False
        self.batches = 0
        self.largest = 0

    def submit(self, item: T) -> R | BaseException:
        """`item`'s answer, or the exception its batch raised (returned, not raised)."""
        slot: _Slot[T, R] = _Slot(item)
        with self._lock:
            self._queue.append(slot)
            leads = not self._writing
            self._writing = True
        if not leads:
            slot.ready.wait()
            if not slot.lead:
                return slot.answer  # type: ignore[return-value]
        return self._lead(slot)

    def _lead(self, mine: _Slot[T, R]) -> R | BaseException:
        while not mine.answered:
            with self._lock:
                batch, self._queue = self._queue[: self.limit], self._queue[self.limit :]
            self._run(batch)
        with self._lock:
            if self._queue:
                heir = self._queue[0]
                heir.lead = True
                heir.ready.set()
            else:
                self._writing = False
        return mine.answer  # type: ignore[return-value]

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        answers: Sequence[R | BaseException]
        try:
            answers = self._write([slot.item for slot in batch])
        except Exception as exc:  # storage failed: the whole batch is undone
            answers = [exc] * len(batch)
        self.batches += 1
        self.largest = max(self.largest, len(batch))
        for slot, answer in zip(batch, answers, strict=True):
            slot.answer, slot.answered = answer, True
            slot.ready.set()
