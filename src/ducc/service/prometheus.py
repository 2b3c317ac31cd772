"""The metrics (`ducc.metrics`) in Prometheus' text exposition format, served on a loopback
HTTP port (`ducc loop --metrics-listen`) and/or written to a node_exporter textfile."""

from __future__ import annotations

import os
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ducc.metrics import METRICS, Metric, Metrics


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(metrics: Metrics = METRICS) -> str:
    """Every metric with `# HELP` and `# TYPE` lines, its series sorted by label values."""
    lines: list[str] = []
    for metric in metrics.snapshot():
        lines.append(f"# HELP {metric.name} {metric.help}")
        lines.append(f"# TYPE {metric.name} {metric.kind}")
        lines += [_series(metric, key, value) for key, value in sorted(metric.values.items())]
    return "\n".join(lines) + "\n"


def _series(metric: Metric, key: tuple[str, ...], value: float) -> str:
    pairs = ",".join(f'{n}="{_escape(v)}"' for n, v in zip(metric.labels, key, strict=True))
    return f"{metric.name}{{{pairs}}} {value:g}" if pairs else f"{metric.name} {value:g}"


def write_textfile(path: Path, metrics: Metrics = METRICS) -> None:
    """Write atomically, as node_exporter's textfile collector expects."""
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    tmp.write_text(render(metrics))
    os.replace(tmp, path)


def serve(host: str, port: int, metrics: Metrics = METRICS) -> ThreadingHTTPServer:
    """Serve `/metrics` from a daemon thread; returns the server (call `.shutdown()`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = render(metrics).encode()
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
