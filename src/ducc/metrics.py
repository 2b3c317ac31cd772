"""Prometheus metrics: counters and gauges rendered in the text exposition format, served
on a loopback HTTP port and/or written to a node_exporter textfile. A leaf module: any
layer may count into `METRICS` without importing more of the project.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Literal

Kind = Literal["counter", "gauge"]


@dataclass
class _Metric:
    name: str
    help: str
    kind: Kind
    labels: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}
        self._lock = threading.Lock()

    def define(self, name: str, help_text: str, kind: Kind, labels: tuple[str, ...] = ()) -> None:
        with self._lock:
            self._metrics.setdefault(name, _Metric(name, help_text, kind, labels))

    def _key(self, metric: _Metric, labels: dict[str, str]) -> tuple[str, ...]:
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

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for metric in self._metrics.values():
                lines.append(f"# HELP {metric.name} {metric.help}")
                lines.append(f"# TYPE {metric.name} {metric.kind}")
                for key, value in sorted(metric.values.items()):
                    pairs = ",".join(
                        f'{n}="{_escape(v)}"' for n, v in zip(metric.labels, key, strict=True)
                    )
                    lines.append(
                        f"{metric.name}{{{pairs}}} {value:g}"
                        if pairs
                        else f"{metric.name} {value:g}"
                    )
        return "\n".join(lines) + "\n"

    def write_textfile(self, path: Path) -> None:
        """Write atomically, as node_exporter's textfile collector expects."""
        tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
        tmp.write_text(self.render())
        os.replace(tmp, path)

    def serve(self, host: str, port: int) -> ThreadingHTTPServer:
        """Serve `/metrics` from a daemon thread; returns the server (call `.shutdown()`)."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server


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
