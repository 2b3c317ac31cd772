"""Local state: checks, failure counts, history; survives reopening, damage, a full disk."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import structlog

from ducc.pipeline.report import ImageResult, Outcome, Recorder
from ducc.service import state as state_module
from ducc.service.state import Conversion, State
from tests.support.filesystems import fill, tmpfs


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


def test_a_runs_results_are_recorded_as_checks_and_conversions(tmp_path: Path) -> None:
    """The state is the pipeline's `Recorder`: `ducc status` shows what a run found."""
    state = State(tmp_path)
    recorder: Recorder = state
    converted = ImageResult(
        "r",
        "reg/app:1",
        "reg/app:*",
        Outcome.ADDED,
        digest="sha256:a",
        converted=True,
        seconds=2.5,
        bytes_downloaded=1000,
    )
    checked = ImageResult("r", "reg/app:2", "reg/app:*", Outcome.FAILED, error="boom")
    recorder.record([converted, checked])
    by_image = {i.image: i for i in state.images()}
    assert (by_image["reg/app:1"].status, by_image["reg/app:1"].digest) == ("added", "sha256:a")
    assert (by_image["reg/app:2"].status, by_image["reg/app:2"].failures) == ("failed", 1)
    (conversion,) = state.conversions()
    assert (conversion.image, conversion.bytes) == ("reg/app:1", 1000)
    assert conversion.duration == pytest.approx(2.5)


# --- damage: the state is a cache of what the repository records, so it never stops ducc ---


def reopened(tmp_path: Path) -> State:
    state = State(tmp_path)
    state.record_check(
        "r", "i", wish="w", status="added", digest="sha256:x", error=None, now=1, next_check=2
    )
    return state


def test_garbage_is_moved_aside_with_a_warning_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").write_bytes(b"not a database at all " * 200)
    with structlog.testing.capture_logs() as logs:
        state = reopened(tmp_path)
    (warning,) = [e for e in logs if e["event"] == "state_damaged"]
    assert warning["path"] == str(tmp_path / "state.sqlite")
    (aside,) = tmp_path.glob("state.sqlite.damaged-*")
    assert aside.read_bytes().startswith(b"not a database")  # kept for a post-mortem
    assert state.in_memory is None
    state.close()
    assert [i.image for i in State(tmp_path).images()] == ["i"]  # a new file, on disk


def test_a_corrupted_page_is_found_and_the_file_replaced(tmp_path: Path) -> None:
    state = reopened(tmp_path)
    for n in range(200):
        state.record_conversion(Conversion("r", f"i{n}", n, n + 1, "added", None, n, "x" * 500))
    state.close()
    data = bytearray((tmp_path / "state.sqlite").read_bytes())
    data[4096 * 3 : 4096 * 3 + 2000] = os.urandom(2000)  # a page in the middle
    (tmp_path / "state.sqlite").write_bytes(bytes(data))
    with structlog.testing.capture_logs() as logs:
        State(tmp_path).close()
    assert any(e["event"] == "state_damaged" for e in logs)


def test_an_unreadable_state_file_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").mkdir()  # what no permission can make unreadable for root
    state = reopened(tmp_path)
    assert state.in_memory is None
    assert [i.image for i in state.images()] == ["i"]
    assert len(list(tmp_path.glob("state.sqlite.damaged-*"))) == 1


def test_the_history_keeps_its_newest_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(state_module, "HISTORY", 5)
    state = State(tmp_path)
    for n in range(12):
        state.record_conversion(Conversion("r", f"i{n}", n, n + 1, "added", None, 0, None))
    assert [c.image for c in state.conversions(100)] == [f"i{n}" for n in range(11, 6, -1)]


@pytest.mark.root
def test_a_full_state_directory_keeps_the_state_in_memory(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "128k") as directory:
        fill(directory)
        with structlog.testing.capture_logs() as logs:
            state = reopened(directory)
        assert state.in_memory is not None
        assert str(directory / "state.sqlite") in state.in_memory
        assert [i.image for i in state.images()] == ["i"]  # works for this run
        (warning,) = [e for e in logs if e["event"] == "state_unavailable"]
        assert warning["path"] == str(directory / "state.sqlite")
        state.close()


@pytest.mark.root
def test_a_state_disk_that_fills_up_mid_run_does_not_stop_the_writes(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "filling", "256k") as directory:
        state = reopened(directory)
        fill(directory)
        with structlog.testing.capture_logs() as logs:
            for n in range(300):
                state.record_conversion(Conversion("r", f"i{n}", n, n, "added", None, 0, "e" * 900))
        assert state.in_memory is not None
        assert any(e["event"] == "state_unavailable" for e in logs)
        assert state.conversions(1)[0].image == "i299"
        state.close()


@pytest.mark.root
def test_a_read_only_state_directory_keeps_the_state_in_memory(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as directory:
        reopened(directory).close()
        subprocess.run(["mount", "-o", "remount,ro", directory], check=True)
        state = reopened(directory)
        assert state.in_memory is not None
        assert not list(directory.glob("state.sqlite.damaged-*"))  # a good file is left alone
        state.close()
