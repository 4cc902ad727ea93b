"""Prometheus text-format metrics: counters, gauges and histograms with labels, nothing else.

A few dozen lines instead of a dependency: the server needs four metric families and the
text exposition format (https://prometheus.io/docs/instrumenting/exposition_formats/).
Updates happen on the event loop and in the model threads, so every write takes a lock.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass, field

LabelValues = tuple[str, ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_INF_LABEL = 'le="+Inf"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: LabelValues, extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


@dataclass
class Counter:
    name: str
    help: str
    label_names: tuple[str, ...] = ()
    _values: dict[LabelValues, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


@dataclass
class Gauge:
    name: str
    help: str
    label_names: tuple[str, ...] = ()
    _values: dict[LabelValues, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, *labels: str, value: float) -> None:
        with self._lock:
            self._values[labels] = value

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


@dataclass
class _HistogramSeries:
    bucket_counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    label_names: tuple[str, ...] = ()
    _series: dict[LabelValues, _HistogramSeries] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, *labels: str, value: float) -> None:
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = _HistogramSeries([0] * len(self.buckets))
            index = bisect.bisect_left(self.buckets, value)
            if index < len(self.buckets):
                series.bucket_counts[index] += 1
            series.total += value
            series.count += 1

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return series.count if series else 0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = [
                (key, _HistogramSeries(list(s.bucket_counts), s.total, s.count))
                for key, s in sorted(self._series.items(), key=lambda pair: pair[0])
            ]
        for key, series in items:
            cumulative = 0
            for bound, bucket_count in zip(self.buckets, series.bucket_counts, strict=True):
                cumulative += bucket_count
                bound_label = 'le="' + _number(bound) + '"'
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, bound_label)} {cumulative}")
            lines.append(f"{self.name}_bucket{_labels(self.label_names, key, _INF_LABEL)} {series.count}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(series.total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {series.count}")
        return lines


@dataclass
class ServerMetrics:
    """The metric families the server exposes at /metrics."""

    requests: Counter = field(
        default_factory=lambda: Counter(
            "modelforge_requests_total", "HTTP requests by route and status code", ("route", "status")
        )
    )
    latency: Histogram = field(
        default_factory=lambda: Histogram(
            "modelforge_request_latency_seconds", "Time from request to response, by route", LATENCY_BUCKETS, ("route",)
        )
    )
    batch_size: Histogram = field(
        default_factory=lambda: Histogram(
            "modelforge_batch_size_rows", "Rows per forward pass, by model", BATCH_SIZE_BUCKETS, ("model",)
        )
    )
    queue_depth: Gauge = field(
        default_factory=lambda: Gauge("modelforge_queue_depth", "Requests waiting for a forward pass", ("model",))
    )
    generated_tokens: Counter = field(
        default_factory=lambda: Counter("modelforge_generated_tokens_total", "Tokens generated, by model", ("model",))
    )

    def render(self) -> str:
        families = (self.requests, self.latency, self.batch_size, self.queue_depth, self.generated_tokens)
        return "\n".join(line for family in families for line in family.render()) + "\n"
