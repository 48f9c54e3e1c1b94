"""Shop operations run again when their transaction lost a race with another writer.

On PostgreSQL writers on different keys run at once, so a transaction can lose: a deadlock,
or a stream it reaches late was written meanwhile by a transaction that began after it
(`TransactionConflict`; the server rolled it back whole). SQLite serialises writers and
never raises it. An operation is run again from the top, a few times, a random moment
apart: it reads everything afresh, so a run that follows a rolled-back one sees what the
winner wrote. Inside a caller's own transaction the conflict is the caller's to handle
(the whole transaction is gone, not only this operation's part).
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from ledger import Ledger, TransactionConflict

ATTEMPTS = 5
"""Runs of an operation before its `TransactionConflict` is raised."""

P = ParamSpec("P")
T = TypeVar("T")


def again_on_conflict(
    ledger: Ledger, operation: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """`operation(*args, **kwargs)`, run again while it raises `TransactionConflict`.

    Safe for operations whose provider calls come after their commits (every shop
    operation): a conflicting run wrote nothing and called nothing.
    """
    attempt = 0
    while True:
        try:
            return operation(*args, **kwargs)
        except TransactionConflict:
            attempt += 1
            if ledger.in_transaction or attempt >= ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.005 * 2**attempt))  # apart, not in step


class _HasLedger(Protocol):
    ledger: Ledger


S = TypeVar("S", bound=_HasLedger)


def retried(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """A method of an object with a `ledger`, run again on `TransactionConflict`."""

    @functools.wraps(method)
    def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return again_on_conflict(self.ledger, method, self, *args, **kwargs)

    return run
