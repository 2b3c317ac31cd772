"""One lane per registry: the images of different registries are polled and downloaded at
once, so a registry that stalls holds up its own images only.

`run_lanes` starts a thread per lane; each polls its items a few at a time (`poll`), then
prepares them in order (`prepare`, which downloads) and hands them over as soon as they are
ready, at most `ahead` of them waiting for the consumer (what they downloaded lies on disk
meanwhile). The consumer, one thread (the publisher's), takes them in the order they become
ready. A stop (SIGTERM, or the consumer leaving early) ends every lane at its next item; an
item already being prepared ends at its next check or deadline.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ducc.interrupts import INTERRUPTS, SLICE

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Ready(Generic[T, R]):
    """A prepared item: the result of `prepare`, or the exception it raised."""

    item: T
    result: R | None
    error: BaseException | None = None
    credit: threading.Semaphore | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class _LaneDone:
    name: str


@dataclass(frozen=True, slots=True)
class _Lane(Generic[T, P, R]):
    items: list[T]
    poll: Callable[[T], P]
    prepare: Callable[[T, P], R]
    holds: Callable[[R], bool]
    pollers: int
    credit: threading.Semaphore
    ready: queue.Queue[Ready[T, R] | _LaneDone]
    stop: threading.Event


def run_lanes(
    items: Sequence[T],
    lane_of: Callable[[T], Hashable],
    poll: Callable[[T], P],
    prepare: Callable[[T, P], R],
    *,
    holds: Callable[[R], bool] = lambda _: True,
    ahead: int = 2,
    pollers: int = 4,
) -> Iterator[Ready[T, R]]:
    """Every item, prepared, in the order the lanes finish them. `holds(result)` says
    whether a result takes one of its lane's `ahead` places (downloaded blobs do; an
    unchanged image does not); each lane polls `pollers` items at once."""
    groups: dict[Hashable, list[T]] = {}
    for item in items:
        groups.setdefault(lane_of(item), []).append(item)
    ready: queue.Queue[Ready[T, R] | _LaneDone] = queue.Queue()
    stop = threading.Event()
    lanes = [
        _Lane(members, poll, prepare, holds, pollers, threading.Semaphore(ahead), ready, stop)
        for members in groups.values()
    ]
    threads = [
        threading.Thread(target=_run_lane, args=(lane,), name=f"lane-{n}", daemon=True)
        for n, lane in enumerate(lanes)
    ]
    for thread in threads:
        thread.start()
    try:
        yield from _collect(ready, len(threads))
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _collect(ready: queue.Queue[Ready[T, R] | _LaneDone], lanes: int) -> Iterator[Ready[T, R]]:
    running = lanes
    while running:
        try:
            got = ready.get(timeout=SLICE)
        except queue.Empty:
            INTERRUPTS.check()
            continue
        if isinstance(got, _LaneDone):
            running -= 1
            continue
        INTERRUPTS.check()
        try:
            yield got
        finally:
            if got.credit is not None:
                got.credit.release()


def _run_lane(lane: _Lane[T, P, R]) -> None:
    workers = max(1, min(lane.pollers, len(lane.items)))
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poll") as pool:
            polls = [pool.submit(lane.poll, item) for item in lane.items]
            try:
                for item, polled in zip(lane.items, polls, strict=True):
                    if not _prepare_one(lane, item, polled):
                        return
            finally:
                for future in polls:
                    future.cancel()
    finally:
        lane.ready.put(_LaneDone(threading.current_thread().name))


def _prepare_one(lane: _Lane[T, P, R], item: T, polled: Future[P]) -> bool:
    """Prepare `item` once its lane has room; False when the lane must end."""
    while not lane.credit.acquire(timeout=SLICE):
        if lane.stop.is_set():
            return False
    if lane.stop.is_set():
        return False
    try:
        result = lane.prepare(item, polled.result())
    except BaseException as exc:  # handed to the consumer, which raises it
        lane.ready.put(Ready(item, None, exc, lane.credit))
        return False
    keeps = lane.holds(result)
    lane.ready.put(Ready(item, result, None, lane.credit if keeps else None))
    if not keeps:
        lane.credit.release()
    return True
