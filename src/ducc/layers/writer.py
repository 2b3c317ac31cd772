"""File data and attributes written by a thread of their own, while the caller parses the
next tar entries: writes and attribute calls release the GIL, so a layer's files are
written while its headers are parsed and its paths resolved.

The caller creates each file (so names, links and whiteouts keep the tar's order) and hands
over its descriptor, its data (views of the stream's immutable buffers, never copied) and
its header; this thread writes, applies the attributes and closes, in the order handed
over. Every descriptor handed over is closed by this thread, also after a failure or when
the caller gives up on a file, so a descriptor number is never reused while data for it
waits. At most `IN_FLIGHT` bytes wait, so memory stays bounded whatever the file sizes.
The first failure is raised to the caller at its next `data()` or at `close()`.
"""

from __future__ import annotations

import os
import tarfile
import threading
from collections import deque
from dataclasses import dataclass

from ducc.layers.metadata import Metadata

IN_FLIGHT = 16 << 20  # bytes handed over and not yet written


class WriteFailed(Exception):
    """A write or attribute call failed for `entry` (raised in the caller's thread)."""

    def __init__(self, entry: str, error: OSError) -> None:
        super().__init__(f"{entry}: {error}")
        self.entry = entry
        self.error = error


@dataclass(frozen=True, slots=True)
class _Data:
    fd: int
    view: memoryview
    entry: str


@dataclass(frozen=True, slots=True)
class _Close:
    fd: int
    info: tarfile.TarInfo | None  # the attributes to apply first; None: just close
    entry: str


class FileWriter:
    """The writing thread of one layer's application; `metadata` is its own (not shared)."""

    def __init__(self, metadata: Metadata) -> None:
        self.metadata = metadata
        self._jobs: deque[_Data | _Close] = deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        self._failure: WriteFailed | None = None
        self._thread = threading.Thread(target=self._work, name="layer-write", daemon=True)
        self._thread.start()

    def data(self, fd: int, view: memoryview, entry: str) -> None:
        """Queue `view` for `fd` (waits while too much is in flight)."""
        with self._cond:
            while self._bytes >= IN_FLIGHT and self._failure is None:
                self._cond.wait()
            if self._failure is not None:
                raise self._failure
            self._jobs.append(_Data(fd, view, entry))
            self._bytes += len(view)
            self._cond.notify_all()

    def done(self, fd: int, info: tarfile.TarInfo | None, entry: str) -> None:
        """All of the file's data is queued: apply `info`'s attributes (None: none, the
        caller gave up on the file), then close `fd`. Never raises."""
        with self._cond:
            self._jobs.append(_Close(fd, info, entry))
            self._cond.notify_all()

    def close(self) -> None:
        """Wait until everything queued is written and closed; raise the first failure."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            try:
                self._do(job)
            except OSError as exc:
                with self._cond:
                    if self._failure is None:
                        self._failure = WriteFailed(job.entry, exc)
                    self._cond.notify_all()

    def _do(self, job: _Data | _Close) -> None:
        if isinstance(job, _Close):
            try:
                if job.info is not None and self._failure is None:
                    self.metadata.file(job.fd, job.info)
            finally:
                os.close(job.fd)
            return
        try:
            left = job.view
            while left and self._failure is None:
                left = left[os.write(job.fd, left) :]
        finally:
            with self._cond:
                self._bytes -= len(job.view)
                self._cond.notify_all()
