"""`Service`: what the web adapters and the worker share in one process.

The ASGI and WSGI apps only move bytes: they read a body up to the cap and call
`deliver`, `health` or `metrics`, which decide the answer, count it and log it. One `Shop`
serves every thread (each gets its own SQLite connection), so settling runs in whatever
thread the adapter hands it and the event loop never blocks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import msgspec

from commerce import MAX_BODY, CommerceError, Inbound, SettleResult, Shop, WebhookSource
from ledger import VerifyReport
from service import answers
from service.answers import Answer
from service.batching import Batcher
from service.errors import StartupRefused
from service.health import Health
from service.logs import line
from service.metrics import CONTENT_TYPE, Metrics
from service.settings import Settings
from service.worker import Worker

ShopSource = Shop | Callable[[], Shop]
"""A shop to use (its owner closes it), or a function that opens one (the service closes it)."""
DUE_COUNTED = 10_000
"""`timers_due` is counted up to this many (a probe must stay cheap after an outage)."""


class Service:
    """One process's receiver and worker over one shop; `start` before use, `close` after."""

    def __init__(
        self,
        shop: ShopSource,
        sources: Mapping[str, WebhookSource],
        *,
        settings: Settings | None = None,
    ) -> None:
        self._factory = None if isinstance(shop, Shop) else shop
        self._shop = shop if isinstance(shop, Shop) else None
        self.sources = dict(sources)
        self.settings = settings or Settings()
        self.health = Health()
        self.metrics = Metrics()
        self.limit = MAX_BODY
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._in_flight = 0
        self._idle = threading.Condition()
        self._closed = False
        self._batches: Batcher[tuple[Inbound, bytes], SettleResult | CommerceError] = Batcher(
            lambda batch: self.shop.settler.settle_batch(batch), limit=self.settings.batch_limit
        )

    @property
    def shop(self) -> Shop:
        """The shop (opened by `start` when the service was given a factory)."""
        if self._shop is None:
            self.start()
        assert self._shop is not None  # start() sets it or raises
        return self._shop

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> VerifyReport | None:
        """Open the shop, verify the ledger (unless settings say not), start the worker.

        Idempotent and thread-safe (a WSGI server calls it on the first request). Raises
        `StartupRefused` naming the position if the chain is broken: nothing is served.
        """
        with self._lock:
            if self._started:
                return None
            if self._shop is None:
                assert self._factory is not None
                self._shop = self._factory()
            try:
                report = self._verify(self._shop) if self.settings.verify else None
            except StartupRefused:
                if self._factory is not None:  # opened here: closed here
                    self._shop.close()
                    self._shop = None
                raise
            if self.settings.worker:
                self._start_worker(self._shop)
            self._started = True
            line(event="started", verified=None if report is None else report.head[0])
            return report

    def _verify(self, shop: Shop) -> VerifyReport:
        started = time.perf_counter()
        report = shop.ledger.verify()
        broken = report.broken.position if report.broken else None
        self.health.verified(report.ok, report.head, full=True, broken=broken)
        if not report.ok:
            raise StartupRefused(broken, why_not_verified(report))
        line(
            event="verified",
            events=report.events,
            head=f"{report.head[0]}:{report.head[1]}",
            seconds=round(time.perf_counter() - started, 3),
        )
        return report

    def _start_worker(self, shop: Shop) -> None:
        self._thread = threading.Thread(
            target=self.run_worker, args=(self._stop,), name="orderflow-worker", daemon=True
        )
        self._thread.start()

    def run_worker(self, stop: threading.Event) -> None:
        """Run the worker's jobs in this thread until `stop` (or `close`) is set."""
        worker = Worker(self.shop, settings=self.settings, health=self.health, metrics=self.metrics)
        ledger = self.shop.ledger
        seen = ledger.head()[0]
        while not (stop.is_set() or self._stop.is_set()):
            pause = min(worker.step(), 1.0)  # wakes within a second of `close`
            if ledger.serialised:
                stop.wait(pause)
            elif ledger.wait_for_events(seen, pause):  # PostgreSQL: a commit anywhere
                seen = ledger.head()[0]
                worker.nudge("timers")  # it may have set a timer due sooner than the next look

    def close(self) -> None:
        """Drain: report draining, stop the worker, wait for deliveries in flight, close.

        The shop is closed only if the service opened it. Waits at most the drain timeout.
        """
        if self._closed:
            return
        self._closed = True
        self.health.draining = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + self.settings.drain_timeout
        with self._idle:
            while self._in_flight and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))
        if self._factory is not None and self._shop is not None:
            self._shop.close()
            self._shop = None
        line(event="stopped", in_flight=self._in_flight)

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Count a delivery from its body read to its answer: the queue depth, and what
        `close` waits for (the adapters wrap `deliver` in it)."""
        with self._idle:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._idle:
                self._in_flight -= 1
                self._idle.notify_all()

    # -- answers -----------------------------------------------------------------------

    def source(self, provider: str) -> WebhookSource | None:
        """The webhook source mounted at `/webhooks/<provider>`, if any."""
        return self.sources.get(provider)

    def before_body(self, provider: str, declared: str | None) -> Answer | None:
        """The answer due before reading any body: 404 for an unknown provider, 413 for a
        declared `Content-Length` past the cap; None to go on reading."""
        if provider not in self.sources:
            return self.refused(provider, _unknown(provider))
        length = (declared or "").strip()
        if length.isdigit() and int(length) > self.limit:
            return self.too_large(provider, int(length), at_least=False)
        return None

    def deliver(self, provider: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Settle one delivery to `provider`'s endpoint and answer it (any thread)."""
        source = self.sources.get(provider)
        if source is None:
            return self.refused(provider, _unknown(provider))
        started = time.perf_counter()
        answer = answers.of(self._settle(source, body, headers), self.settings.retry_after)
        seconds = time.perf_counter() - started
        if answer.result is not None:
            self.metrics.settle_seconds.observe(seconds)
        self._count(provider, answer, seconds)
        return answer

    def _settle(
        self, source: WebhookSource, body: bytes, headers: Mapping[str, str]
    ) -> SettleResult | BaseException:
        """Authenticate and decode here, in the delivery's thread (SumUp's confirmation
        call included), then settle in the next shared transaction (group commit)."""
        try:
            inbound = self.shop.settler.authentic(source, body, headers)
        except Exception as exc:
            return exc
        return self._batches.submit((inbound, body))

    def refused(self, provider: str, answer: Answer, seconds: float = 0.0) -> Answer:
        """Count and log an answer given before settling (404, 408, 413), and return it."""
        self._count(provider if provider in self.sources else "unknown", answer, seconds)
        return answer

    def too_large(self, provider: str, size: int, *, at_least: bool) -> Answer:
        """The 413 for a body past the cap (counted and logged)."""
        return self.refused(provider, answers.too_large(size, self.limit, at_least=at_least))

    def timed_out(self, provider: str) -> Answer:
        """The 408 for a body that did not arrive within the read timeout."""
        answer = answers.timed_out(self.settings.read_timeout)
        return self.refused(provider, answer, self.settings.read_timeout)

    def _count(self, provider: str, answer: Answer, seconds: float) -> None:
        self.metrics.deliveries.inc(provider=provider, outcome=answer.outcome)
        if answer.status >= 500 and answer.error is not None:
            self.health.error("delivery", answer.error)
        result = answer.result
        level = logging.ERROR if answer.status >= 500 else logging.INFO
        line(
            level,
            provider=provider,
            event_id=result.event_id if result else None,
            order=result.order_id if result else None,
            outcome=answer.outcome,
            status=answer.status,
            ms=round(seconds * 1000, 3),
            **({"error": str(answer.error)} if answer.error is not None and not result else {}),
        )

    def health_answer(self) -> Answer:
        """`/healthz`: 200 when healthy, else 503 with the same report saying why."""
        report = self.health.report(in_flight=self._in_flight, **self._ledger_state())
        body = msgspec.json.encode(report)
        return Answer(status=200 if report.ok else 503, body=body, outcome="health")

    def metrics_answer(self) -> Answer:
        """`/metrics` in Prometheus' text format."""
        state = self._ledger_state()
        head = state["head"]
        gauges = {
            "orderflow_delivery_queue_depth": (
                "Deliveries received and not yet answered.",
                float(self._in_flight),
            ),
            "orderflow_timers_due": (
                f"Timers due now and not yet fired (counted up to {DUE_COUNTED}).",
                float(state["due"] if state["due"] is not None else -1),
            ),
            "orderflow_worker_lag_seconds": (
                "How long the oldest due timer has waited to be fired.",
                float(state["lag"] or 0.0),
            ),
            "orderflow_settle_batches_total": (
                "Write transactions that settled deliveries (group commit: one per batch).",
                float(self._batches.batches),
            ),
            "orderflow_settle_batch_largest": (
                "The most deliveries one write transaction settled so far.",
                float(self._batches.largest),
            ),
            "orderflow_ledger_head_position": (
                "The position of the ledger's last event (-1: unreadable).",
                float(head.split(":")[0]) if head else -1.0,
            ),
        }
        verified = self.health.last_check()
        if verified is not None:
            gauges["orderflow_verified_position"] = (
                "The last position the chain was verified up to.",
                float(verified.position),
            )
            gauges["orderflow_verified_age_seconds"] = (
                "Seconds since the chain was last verified.",
                verified.age_seconds,
            )
        return Answer(
            status=200,
            body=self.metrics.render(gauges),
            outcome="metrics",
            content_type=CONTENT_TYPE,
        )

    def _ledger_state(self) -> dict[str, Any]:
        """The head, the worker lag and the due count, read from the ledger (None if unreadable)."""
        try:
            shop = self.shop
            position, hash_ = shop.ledger.head()
            now = shop.clock()
            due = shop.ledger.flows(due_before=now, limit=DUE_COUNTED)
        except Exception as exc:  # the probe reports it rather than failing
            self.health.error("healthz", exc)
            return {"head": None, "lag": None, "due": None}
        oldest = due[0].due if due else None  # ordered by due
        lag = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
        return {"head": f"{position}:{hash_}", "lag": round(lag, 3), "due": len(due)}


def why_not_verified(report: VerifyReport) -> str:
    """A short reason a full verification failed."""
    if report.broken is not None:
        return "an event does not match its stored hash"
    if report.gaps:
        gap = report.gaps[0]
        where = f"stream {gap.stream!r}" if gap.stream else "the global positions"
        return f"a gap in {where}: expected {gap.expected}, found {gap.found}"
    if report.projections:
        diff = report.projections[0]
        return f"table {diff.table} differs from a rebuild of the events"
    if report.missing_guards:
        return f"append-only guards missing: {', '.join(report.missing_guards)}"
    if report.anchor is not None:
        return f"the expected head {report.anchor} is not in the chain"
    return "the verification failed"


def _unknown(provider: str) -> Answer:
    shown = provider if len(provider) <= 40 else provider[:40] + "..."
    return answers.error(404, "unknown_provider", f"no webhook source for provider {shown!r}")
