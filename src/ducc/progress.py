"""Progress bars on a terminal (downloads and layer application: bytes, rate, per task),
nothing elsewhere. A leaf module: a task is a context yielding an `advance(n)` callback.
rich is imported when the first bar is shown: off a terminal it is never loaded."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

Advance = Callable[[int], None]


def _ignore(_count: int) -> None:
    pass


class Bars:
    """Shared by every thread; the display starts with the first task and stops with the last."""

    def __init__(self, console: Console | None = None, *, enabled: bool | None = None) -> None:
        self._console = console  # default: stderr's, made with the first bar
        if enabled is None:
            enabled = console.is_terminal if console is not None else sys.stderr.isatty()
        self.enabled = enabled
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks = 0

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Advance]:
        if not self.enabled:
            yield _ignore
            return
        progress = self._open()
        task_id = progress.add_task(description, total=total)
        try:
            yield lambda count: progress.advance(task_id, count)
        finally:
            progress.remove_task(task_id)
            self._close()

    def _open(self) -> Progress:
        with self._lock:
            if self._progress is None:
                from rich.console import Console  # noqa: PLC0415 - only on a terminal
                from rich.progress import (  # noqa: PLC0415
                    BarColumn,
                    DownloadColumn,
                    Progress,
                    TextColumn,
                    TimeRemainingColumn,
                    TransferSpeedColumn,
                )

                if self._console is None:
                    self._console = Console(stderr=True)
                self._progress = Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                    console=self._console,
                    transient=True,
                )
                self._progress.start()
            self._tasks += 1
            return self._progress

    def _close(self) -> None:
        with self._lock:
            self._tasks -= 1
            if self._tasks == 0 and self._progress is not None:
                self._progress.stop()
                self._progress = None


class CountingReader:
    """A readable that reports how many bytes passed through it."""

    def __init__(self, raw: Any, advance: Advance) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, n: int = -1, /) -> bytes:
        data: bytes = self._raw.read(n)
        self._advance(len(data))
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        count: int = self._raw.readinto(buffer)
        self._advance(count)
        return count

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


BARS = Bars(enabled=sys.stderr.isatty())
