"""Counters and gauges: labels checked, values added up, snapshots independent of later counts."""

from __future__ import annotations

import pytest

from ducc.metrics import Metrics


def test_counters_add_up_per_label_and_refuse_other_labels() -> None:
    metrics = Metrics()
    metrics.define("t_requests_total", "Requests.", "counter", ("registry", "code"))
    metrics.inc("t_requests_total", registry="quay.io", code="200")
    metrics.inc("t_requests_total", 2, registry="quay.io", code="200")
    assert metrics.value("t_requests_total", registry="quay.io", code="200") == 3
    assert metrics.value("t_requests_total", registry="quay.io", code="404") == 0
    with pytest.raises(ValueError, match="takes labels"):
        metrics.inc("t_requests_total", registry="x")


def test_a_snapshot_keeps_the_values_it_was_taken_with() -> None:
    metrics = Metrics()
    metrics.define("t_images", "Images.", "gauge", ("state",))
    metrics.set("t_images", 4, state="failed")
    (snapshot,) = metrics.snapshot()
    metrics.reset_gauge("t_images")
    assert snapshot.values == {("failed",): 4}
    assert metrics.snapshot()[0].values == {}
