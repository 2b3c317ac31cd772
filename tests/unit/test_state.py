"""Local state: checks, failure counts, history; survives reopening."""

from __future__ import annotations

from pathlib import Path

from ducc.state import Conversion, State


def test_checks_count_failures_and_reset_on_success(tmp_path: Path) -> None:
    state = State(tmp_path)

    def check(status: str, digest: str | None, error: str | None, now: float) -> None:
        state.record_check(
            "r", "i", wish="w", status=status, digest=digest, error=error, now=now, next_check=99
        )

    check("failed", None, "boom", 1)
    check("failed", None, "boom", 2)
    failed = state.get("r", "i")
    assert failed is not None
    assert (failed.failures, failed.last_error, failed.last_success) == (2, "boom", None)
    check("unchanged", "sha256:x", None, 3)
    ok = state.get("r", "i")
    assert ok is not None
    assert (ok.failures, ok.last_error, ok.last_success, ok.digest) == (0, None, 3, "sha256:x")
    state.close()
    reopened = State(tmp_path)
    assert [s.image for s in reopened.images()] == ["i"]
    reopened.forget("r", ["i"])
    assert reopened.images() == []


def test_history_newest_first(tmp_path: Path) -> None:
    state = State(tmp_path)
    for n in range(3):
        state.record_conversion(Conversion("r", f"i{n}", n, n + 0.5, "ok", None, 10 * n, None))
    history = state.conversions(limit=2)
    assert [c.image for c in history] == ["i2", "i1"]
    assert history[0].duration == 0.5
