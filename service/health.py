"""What `/healthz` reports: the chain's last check, the worker's jobs, the last error.

The state is written by the worker thread and the request threads and read by probes, so
every change goes through one lock; the report itself is a plain msgspec value.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import msgspec

FAILING_AFTER = 3
"""Consecutive failures of one worker job after which the process reports itself unhealthy."""


def _now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LastError(msgspec.Struct, frozen=True, kw_only=True):
    """The most recent failure: where (a job, or `delivery`), what, and when (UTC)."""

    where: str
    error: str
    at: str


class Verified(msgspec.Struct, frozen=True, kw_only=True):
    """The last check of the chain: intact up to `position` (`age_seconds` ago), or broken."""

    ok: bool
    position: int
    hash: str
    full: bool
    age_seconds: float
    broken_at: int | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """One worker job: when it last succeeded and how many times it failed since."""

    name: str
    last_ok_age_seconds: float | None
    consecutive_failures: int


class Report(msgspec.Struct, frozen=True, kw_only=True):
    """The body of `/healthz`; `ok` decides 200 or 503."""

    ok: bool
    status: str
    head: str | None
    worker_lag_seconds: float | None
    timers_due: int | None
    deliveries_in_flight: int
    verified: Verified | None
    worker: list[Job]
    last_error: LastError | None


class _Check(msgspec.Struct, kw_only=True):
    ok: bool
    position: int
    hash: str
    full: bool
    at: float
    broken_at: int | None


class Health:
    """The mutable state behind the report, safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._check: _Check | None = None
        self._jobs: dict[str, tuple[float | None, int]] = {}
        self.last_error: LastError | None = None
        self.draining = False

    def verified(self, ok: bool, head: tuple[int, str], *, full: bool, broken: int | None) -> None:
        """Record a verification or scrub of the chain up to `head`."""
        check = _Check(
            ok=ok, position=head[0], hash=head[1], full=full, at=time.monotonic(), broken_at=broken
        )
        with self._lock:
            self._check = check

    def job_ok(self, name: str) -> None:
        """A worker job finished without error."""
        with self._lock:
            self._jobs[name] = (time.monotonic(), 0)

    def job_failed(self, name: str, error: BaseException | str) -> int:
        """A worker job failed; the number of consecutive failures it has now."""
        with self._lock:
            last_ok, failures = self._jobs.get(name, (None, 0))
            self._jobs[name] = (last_ok, failures + 1)
        self.error(name, error)
        return failures + 1

    def error(self, where: str, error: BaseException | str) -> None:
        """Remember `error` as the last one."""
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        with self._lock:
            self.last_error = LastError(where=where, error=text, at=_now_text())

    def last_check(self) -> Verified | None:
        """The last verification or scrub, with its age now (None: none yet)."""
        with self._lock:
            check = self._check
        if check is None:
            return None
        return Verified(
            ok=check.ok,
            position=check.position,
            hash=check.hash,
            full=check.full,
            age_seconds=round(time.monotonic() - check.at, 3),
            broken_at=check.broken_at,
        )

    def report(
        self,
        *,
        head: str | None,
        lag: float | None,
        due: int | None,
        in_flight: int,
    ) -> Report:
        """The report now; `head` None means the ledger could not be read."""
        now = time.monotonic()
        with self._lock:
            jobs, last_error = dict(self._jobs), self.last_error
        verified = self.last_check()
        listed = [
            Job(
                name=name,
                last_ok_age_seconds=None if at is None else round(now - at, 3),
                consecutive_failures=failures,
            )
            for name, (at, failures) in sorted(jobs.items())
        ]
        status = _status(self.draining, head, verified, listed)
        return Report(
            ok=status == "ok",
            status=status,
            head=head,
            worker_lag_seconds=lag,
            timers_due=due,
            deliveries_in_flight=in_flight,
            verified=verified,
            worker=listed,
            last_error=last_error,
        )


def _status(draining: bool, head: str | None, verified: Verified | None, jobs: list[Job]) -> str:
    if draining:
        return "draining"
    if head is None:
        return "ledger unreadable"
    if verified is not None and not verified.ok:
        return "chain broken"
    if any(job.consecutive_failures >= FAILING_AFTER for job in jobs):
        return "worker failing"
    return "ok"
