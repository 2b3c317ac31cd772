"""Progress bars show on a terminal only, per task, and count the bytes read."""

from __future__ import annotations

import io

from rich.console import Console

from ducc.progress import Bars, CountingReader


def test_counting_reader_reports_every_byte() -> None:
    seen: list[int] = []
    reader = CountingReader(io.BytesIO(b"x" * 10_000), seen.append)
    while reader.read(4096):
        pass
    assert sum(seen) == 10_000


def test_bars_render_on_a_terminal_and_stop_with_the_last_task() -> None:
    out = io.StringIO()
    bars = Bars(Console(file=out, force_terminal=True, width=100), enabled=True)
    with bars.task("download 0123456789ab", 1000) as advance:
        advance(500)
        with bars.task("apply 0123456789ab", 10) as other:
            other(10)
    assert "download 0123456789ab" in out.getvalue()
    assert bars._progress is None


def test_bars_off_elsewhere() -> None:
    out = io.StringIO()
    bars = Bars(Console(file=out), enabled=None)
    with bars.task("download x", 10) as advance:
        advance(10)
    assert out.getvalue() == ""
