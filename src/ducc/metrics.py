"""The process's metrics: counters and gauges any layer counts into (`METRICS.inc`) without
importing more of the project. `ducc.service.prometheus` exposes them (HTTP, textfile)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Literal

Kind = Literal["counter", "gauge"]


@dataclass
class Metric:
    """One metric: its values by label values (in the order of `labels`)."""

    name: str
    help: str
    kind: Kind
    labels: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)


class Metrics:
    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}
        self._lock = threading.Lock()

    def define(self, name: str, help_text: str, kind: Kind, labels: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._metrics.setdefault(name, Metric(name, help_text, kind, labels))

    def _key(self, metric: Metric, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(metric.labels):
            raise ValueError(f"{metric.name} takes labels {metric.labels}, got {sorted(labels)}")
        return tuple(str(labels[name]) for name in metric.labels)

    def inc(self, name: str, amount: float = 1, **labels: str) -> None:
        with self._lock:
            metric = self._metrics[name]
            key = self._key(metric, labels)
            metric.values[key] = metric.values.get(key, 0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            metric = self._metrics[name]
            metric.values[self._key(metric, labels)] = value

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            metric = self._metrics[name]
            return metric.values.get(self._key(metric, labels), 0)

    def reset_gauge(self, name: str) -> None:
        with self._lock:
            self._metrics[name].values.clear()

    def snapshot(self) -> list[Metric]:
        """Every metric with a copy of its values, in definition order."""
        with self._lock:
            return [replace(m, values=dict(m.values)) for m in self._metrics.values()]


METRICS = Metrics()
METRICS.define("ducc_images", "Wished images by state of their last check.", "gauge", ("state",))
METRICS.define("ducc_conversions_total", "Image conversions by result.", "counter", ("result",))
METRICS.define("ducc_bytes_downloaded_total", "Blob bytes downloaded from registries.", "counter")
METRICS.define("ducc_layers_reused_total", "Layers found already published.", "counter")
METRICS.define("ducc_layers_ingested_total", "Layers downloaded and published.", "counter")
METRICS.define(
    "ducc_registry_requests_total",
    "Registry HTTP requests by registry and status code.",
    "counter",
    ("registry", "code"),
)
METRICS.define(
    "ducc_registry_ratelimit_remaining",
    "The registry's last ratelimit-remaining header.",
    "gauge",
    ("registry",),
)
METRICS.define(
    "ducc_last_success_timestamp_seconds", "When a conversion pass last succeeded.", "gauge"
)
METRICS.define("ducc_publishes_total", "Publishes (transactions committed).", "counter")
