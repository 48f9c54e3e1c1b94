"""The service's knobs, in one value: timeouts, the worker's schedule, the drain."""

from __future__ import annotations

import msgspec


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """How the service runs; every duration is in seconds.

    `verify`: walk the whole chain and compare the projections before taking traffic.
    `worker`: run timers, reconciliation and scrubs in a thread of this process (turn it
    off when `orderflow worker` runs elsewhere). `read_timeout` bounds the time a client
    may take to send a body. `retry_after` is what a 503 asks the provider to wait.
    """

    verify: bool = True
    worker: bool = True
    read_timeout: float = 10.0
    retry_after: int = 5
    timers_poll: float = 1.0
    """Longest sleep between looks for due timers (another process may add earlier ones)."""
    scrub_every: float = 10.0
    reconcile_every: float = 3600.0
    reconcile_older_than: float = 3600.0
    max_backoff: float = 60.0
    settle_threads: int = 32
    """Threads delivering at once in the ASGI app (the others wait their turn); those that
    arrive while a batch is written go into the next one together."""
    batch_limit: int = 64
    """The most deliveries settled in one write transaction (group commit)."""
    drain_timeout: float = 30.0
    """How long closing waits for deliveries still being settled."""
