"""The worker: fires due timers, reconciles with the providers, scrubs the chain.

Each job keeps its own schedule. A job that fails is logged, shown in `/healthz` and tried
again after an exponential backoff with jitter, so several processes on one file neither
give up nor wake in step. They never act twice either: each timer is fired inside a write
transaction that first checks it is still due, so the second process finds nothing to do.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from commerce import Shop
from service.errors import ChainCheckFailed, NotAdvanced
from service.health import Health
from service.logs import line
from service.metrics import Metrics
from service.settings import Settings

NUDGE_GAP = 0.1
"""Seconds at least between two nudged runs of a job (commits may come by the hundred)."""
WAKE_JITTER = 0.25
"""Up to this many seconds after a timer falls due, so processes do not all wake at once."""


@dataclass
class _Job:
    name: str
    run: Callable[[], float | None]
    """Does the work; returns the seconds until it wants to run again (None: its interval)."""
    interval: float
    base_backoff: float
    next_at: float = 0.0
    failures: int = field(default=0)
    ran_at: float = 0.0


class Worker:
    """The jobs of one process over one shop; call `step` in a loop (`Service.run_worker`)."""

    def __init__(
        self,
        shop: Shop,
        *,
        settings: Settings,
        health: Health,
        metrics: Metrics,
        rng: random.Random | None = None,
    ) -> None:
        self.shop, self.settings, self.health, self.metrics = shop, settings, health, metrics
        self.rng = rng or random.Random()
        now = time.monotonic()
        self.jobs = [
            _Job("timers", self.fire_timers, settings.timers_poll, 1.0, now),
            _Job(
                "reconcile",
                self.reconcile,
                settings.reconcile_every,
                5.0,
                now + self.rng.uniform(0, min(settings.reconcile_every, 30.0)),
            ),
            _Job("scrub", self.scrub, settings.scrub_every, 1.0, now + settings.scrub_every),
        ]

    def step(self) -> float:
        """Run every job that is due; the seconds until the next one is."""
        for job in self.jobs:
            if job.next_at <= time.monotonic():
                self._run(job)
        return max(0.0, min(job.next_at for job in self.jobs) - time.monotonic())

    def nudge(self, name: str) -> None:
        """Run the job `name` at the next `step` (e.g. timers, after another process wrote)."""
        for job in self.jobs:
            if job.name == name and not job.failures:  # a failing job keeps its backoff
                soonest = max(time.monotonic(), job.ran_at + NUDGE_GAP)
                job.next_at = min(job.next_at, soonest)

    def _run(self, job: _Job) -> None:
        job.ran_at = time.monotonic()
        try:
            wanted = job.run()
        except Exception as exc:  # the worker outlives any one failure: log, back off, retry
            self._failed(job, exc)
            return
        job.failures = 0
        self.health.job_ok(job.name)
        delay = job.interval * (1 + self.rng.uniform(0, 0.1)) if wanted is None else wanted
        job.next_at = time.monotonic() + delay

    def _failed(self, job: _Job, error: Exception | str) -> None:
        job.failures = self.health.job_failed(job.name, error)
        self.metrics.worker_errors.inc(job=job.name)
        backoff = min(self.settings.max_backoff, job.base_backoff * 2 ** (job.failures - 1))
        delay = backoff * self.rng.uniform(0.5, 1.0)  # "equal jitter": never zero, never in step
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        line(logging.ERROR, job=job.name, error=text, failures=job.failures, retry_in=delay)
        job.next_at = time.monotonic() + delay

    # -- the jobs ----------------------------------------------------------------------

    def fire_timers(self) -> float | None:
        """Fire what is due now; sleep until the next timer (at most the poll interval)."""
        started = time.perf_counter()
        fired = self.shop.fire_timers()
        for each in fired:
            self.metrics.timers_fired.inc(mode=each.mode)
        if fired:
            ms = round((time.perf_counter() - started) * 1000, 3)
            line(job="timers", fired=len(fired), flows=[f.flow_id for f in fired][:20], ms=ms)
        stuck = [f.flow_id for f in fired if f.error]
        if stuck:  # the others advanced; these stay due, so retry them with backoff
            raise NotAdvanced(stuck)
        return self._until_next_due()

    def _until_next_due(self) -> float:
        poll = self.settings.timers_poll
        now = self.shop.clock()
        rows = self.shop.ledger.flows(due_before=now + timedelta(seconds=poll), limit=1)
        due = rows[0].due if rows else None
        if due is None:
            return poll * (1 + self.rng.uniform(0, 0.1))
        return max(0.0, _seconds(due, now)) + self.rng.uniform(0, WAKE_JITTER)

    def reconcile(self) -> float | None:
        """Ask the providers about orders waiting longer than the setting; log what changed."""
        older = timedelta(seconds=self.settings.reconcile_older_than)
        done = self.shop.reconcile(older_than=older)
        for each in done:
            self.metrics.reconciled.inc(outcome=each.outcome)
        errors = [r for r in done if r.outcome == "error"]
        if done:
            line(job="reconcile", orders=len(done), errors=len(errors))
        for each in errors:  # reported per order; the next scheduled run asks again
            self.health.error("reconcile", f"{each.order_id}: {each.reason}")
        return None

    def scrub(self) -> float | None:
        """Verify the chain added since the last check; a break is an error in /healthz."""
        report = self.shop.ledger.scrub()
        broken = report.broken.position if report.broken else None
        self.health.verified(report.ok, report.head, full=False, broken=broken)
        if not report.ok:
            raise ChainCheckFailed(broken)
        return None


def _seconds(due: datetime, now: datetime) -> float:
    return (due - now).total_seconds()
