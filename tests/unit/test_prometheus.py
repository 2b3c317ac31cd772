"""Prometheus text format, textfile and the loopback endpoint."""

from __future__ import annotations

from pathlib import Path

import requests

from ducc.metrics import Metrics
from ducc.service.prometheus import render, serve, write_textfile


def make() -> Metrics:
    metrics = Metrics()
    metrics.define("t_requests_total", "Requests.", "counter", ("registry", "code"))
    metrics.define("t_last", "Last.", "gauge")
    return metrics


def test_render_text_format() -> None:
    metrics = make()
    metrics.inc("t_requests_total", registry='q"uay', code="200")
    metrics.inc("t_requests_total", 2, registry='q"uay', code="200")
    metrics.set("t_last", 5)
    text = render(metrics)
    assert "# TYPE t_requests_total counter" in text
    assert 't_requests_total{registry="q\\"uay",code="200"} 3' in text
    assert "t_last 5" in text


def test_textfile_and_http(tmp_path: Path) -> None:
    metrics = make()
    metrics.set("t_last", 7)
    write_textfile(tmp_path / "ducc.prom", metrics)
    assert "t_last 7" in (tmp_path / "ducc.prom").read_text()
    server = serve("127.0.0.1", 0, metrics)
    try:
        port = server.server_address[1]
        body = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        assert "t_last 7" in body
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
    finally:
        server.shutdown()
