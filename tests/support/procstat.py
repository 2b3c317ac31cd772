"""Sample a process tree from /proc in a background thread: resident memory, threads and open
file descriptors, with a summary (peaks, medians of the first and last windows, least-squares
slope) that load tests assert on."""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the tree: `rss` and `hwm` in bytes (`hwm` is the root's VmHWM)."""

    at: float  # seconds since sampling started
    rss: int
    hwm: int
    threads: int
    fds: int
    processes: int
    sockets: int = 0  # of the `fds`


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What /proc says about one process; None when it is gone."""

    rss: int
    hwm: int
    threads: int
    fds: int
    sockets: int


def _sockets(fd_dir: Path, names: list[str]) -> int:
    count = 0
    for name in names:
        with contextlib.suppress(OSError):  # closed since the listing
            count += os.readlink(fd_dir / name).startswith("socket:")
    return count


def read_status(pid: int) -> ProcStat | None:
    try:
        text = (PROC / str(pid) / "status").read_text()
        fd_dir = PROC / str(pid) / "fd"
        names = os.listdir(fd_dir)
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in {"VmRSS", "VmHWM", "Threads"}:
            values[key] = int(rest.split()[0])
    if "VmRSS" not in values:  # a zombie has no memory lines
        return None
    sockets = _sockets(fd_dir, names)
    return ProcStat(
        values["VmRSS"] * 1024, values["VmHWM"] * 1024, values["Threads"], len(names), sockets
    )


def _parent_of(pid: int) -> int | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may hold spaces and brackets: the fields start after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> list[int]:
    """`root` and every process below it, at the moment of the scan."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir(PROC):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def take(root: int, at: float) -> Sample | None:
    """Totals over the tree below `root` (None once `root` itself is gone)."""
    head = read_status(root)
    if head is None:
        return None
    stats = [head] + [s for p in descendants(root)[1:] if (s := read_status(p)) is not None]
    return Sample(
        at=at,
        rss=sum(s.rss for s in stats),
        hwm=head.hwm,
        threads=sum(s.threads for s in stats),
        fds=sum(s.fds for s in stats),
        processes=len(stats),
        sockets=sum(s.sockets for s in stats),
    )


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 for fewer than two distinct xs)."""
    if len(xs) < 2:
        return 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread


@dataclass(frozen=True, slots=True)
class Summary:
    samples: int
    seconds: float
    peak_rss: int
    peak_hwm: int
    peak_threads: int
    peak_fds: int
    peak_processes: int
    first_rss: float  # medians over the first and last windows
    last_rss: float
    first_threads: float
    last_threads: float
    first_fds: float
    last_fds: float
    # The fewest descriptors other than sockets seen in each window: what the process holds
    # between pieces of work (a conversion holds locks and blob files for a moment), where a
    # leaked file shows. Sockets are counted apart: a connection pool keeps some open at rest.
    first_files_floor: int
    last_files_floor: int
    peak_sockets: int
    rss_slope_per_min: float  # bytes per minute, least squares over the window-limited run

    def lines(self) -> list[str]:
        mib = 1024 * 1024
        return [
            f"samples {self.samples} over {self.seconds:.0f} s",
            f"peak RSS {self.peak_rss / mib:.1f} MiB (root VmHWM {self.peak_hwm / mib:.1f} MiB)",
            f"peak threads {self.peak_threads}, peak FDs {self.peak_fds}, "
            f"peak processes {self.peak_processes}",
            f"RSS median first/last window {self.first_rss / mib:.1f}/{self.last_rss / mib:.1f} "
            f"MiB, slope {self.rss_slope_per_min / mib:+.3f} MiB/min",
            f"threads median first/last {self.first_threads:g}/{self.last_threads:g}, "
            f"FDs median first/last {self.first_fds:g}/{self.last_fds:g}, "
            f"files floor first/last {self.first_files_floor}/{self.last_files_floor}, "
            f"peak sockets {self.peak_sockets}",
        ]


def summarize(samples: Sequence[Sample], *, skip: float = 0.0, window: float = 10.0) -> Summary:
    """Peaks over every sample; medians and slope over those taken after `skip` seconds
    (the warm-up), windows of `window` seconds at both ends."""
    if not samples:
        raise ValueError("no samples")
    steady = [s for s in samples if s.at >= skip] or list(samples)
    start, end = steady[0].at, steady[-1].at
    first = [s for s in steady if s.at <= start + window]
    last = [s for s in steady if s.at >= end - window]
    return Summary(
        samples=len(samples),
        seconds=samples[-1].at - samples[0].at,
        peak_rss=max(s.rss for s in samples),
        peak_hwm=max(s.hwm for s in samples),
        peak_threads=max(s.threads for s in samples),
        peak_fds=max(s.fds for s in samples),
        peak_processes=max(s.processes for s in samples),
        first_rss=statistics.median(s.rss for s in first),
        last_rss=statistics.median(s.rss for s in last),
        first_threads=statistics.median(s.threads for s in first),
        last_threads=statistics.median(s.threads for s in last),
        first_fds=statistics.median(s.fds for s in first),
        last_fds=statistics.median(s.fds for s in last),
        first_files_floor=min(s.fds - s.sockets for s in first),
        last_files_floor=min(s.fds - s.sockets for s in last),
        peak_sockets=max(s.sockets for s in samples),
        rss_slope_per_min=60 * slope([s.at for s in steady], [s.rss for s in steady]),
    )


@dataclass
class Sampler:
    """`with Sampler(pid, interval) as sampler:` samples until the block ends or `pid` exits."""

    pid: int
    interval: float = 0.2
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="procstat", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            sample = take(self.pid, time.monotonic() - started)
            if sample is None:
                return
            self.samples.append(sample)
            self._stop.wait(self.interval)

    def write_csv(self, path: Path) -> None:
        lines = ["seconds,rss_bytes,hwm_bytes,threads,fds,processes"]
        lines += [
            f"{s.at:.1f},{s.rss},{s.hwm},{s.threads},{s.fds},{s.processes}" for s in self.samples
        ]
        path.write_text("\n".join(lines) + "\n")

    def summary(self, *, skip: float = 0.0, window: float = 10.0) -> Summary:
        return summarize(self.samples, skip=skip, window=window)
