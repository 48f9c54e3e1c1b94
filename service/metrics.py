"""The service's counters in Prometheus' text format (version 0.0.4), written by hand.

The format is a few lines per metric; prometheus-client would bring a process-global
registry and its own multiprocess machinery for what is here a dict behind a lock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SETTLE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds; a settle is about a millisecond, a lock wait up to the busy timeout."""

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: Labels = ()) -> str:
    pairs = (*labels, *extra)
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def _header(name: str, kind: str, help_: str) -> list[str]:
    return [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]


class Counter:
    """A monotonically increasing count per label set."""

    def __init__(self, name: str, help_: str) -> None:
        self.name, self.help = name, help_
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add `amount` to the count for `labels`."""
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        """The count for exactly these labels (0 if never counted)."""
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def lines(self) -> list[str]:
        """The metric in text format."""
        with self._lock:
            items = sorted(self._values.items())
        out = _header(self.name, "counter", self.help)
        out += [f"{self.name}{_labels(k)} {_number(v)}" for k, v in items]
        return out


class Histogram:
    """Observations counted into cumulative buckets, with their sum."""

    def __init__(self, name: str, help_: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help_
        self.bounds = (*sorted(buckets), math.inf)
        self._counts = [0] * len(self.bounds)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count one observation."""
        with self._lock:
            self._sum += value
            for index, bound in enumerate(self.bounds):
                if value <= bound:
                    self._counts[index] += 1
                    break

    def lines(self) -> list[str]:
        """The metric in text format (buckets cumulative, as Prometheus wants them)."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out = _header(self.name, "histogram", self.help)
        running = 0
        for bound, count in zip(self.bounds, counts, strict=True):
            running += count
            out.append(f"{self.name}_bucket{_labels((('le', _number(bound)),))} {running}")
        out += [f"{self.name}_sum {_number(total)}", f"{self.name}_count {running}"]
        return out


class Metrics:
    """Every metric one service process keeps; the gauges are read when scraped."""

    def __init__(self) -> None:
        self.deliveries = Counter(
            "orderflow_deliveries_total", "Webhook deliveries answered, by provider and outcome."
        )
        self.settle_seconds = Histogram(
            "orderflow_settle_seconds",
            "Time to authenticate, decode and settle one delivery (commit included).",
            SETTLE_BUCKETS,
        )
        self.timers_fired = Counter(
            "orderflow_timers_fired_total", "Due timers, retries and leases fired, by mode."
        )
        self.reconciled = Counter(
            "orderflow_reconciled_total", "Orders reconciled with their provider, by outcome."
        )
        self.worker_errors = Counter(
            "orderflow_worker_errors_total", "Worker jobs that failed (retried with backoff)."
        )
        self.cut_off = Counter(
            "orderflow_connections_cut_off_total",
            "Connections closed because their request headers did not arrive in time.",
        )
        self.cut_off.inc(0)  # shown from the start, so a scrape sees it rise from zero

    def render(self, gauges: Mapping[str, tuple[str, float]]) -> bytes:
        """The text exposition: the counters, then `gauges` (name -> (help, value))."""
        lines: list[str] = []
        for metric in (
            self.deliveries,
            self.settle_seconds,
            self.timers_fired,
            self.reconciled,
            self.worker_errors,
            self.cut_off,
        ):
            lines += metric.lines()
        lines += _gauges(gauges.items())
        return ("\n".join(lines) + "\n").encode()


def _gauges(items: Iterable[tuple[str, tuple[str, float]]]) -> list[str]:
    out: list[str] = []
    for name, (help_, value) in items:
        out += [*_header(name, "gauge", help_), f"{name} {_number(value)}"]
    return out
