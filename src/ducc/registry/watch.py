"""Deadlines a blocked socket cannot ignore: one thread shuts down the sockets of requests
whose time is up, or all of them when ducc must stop.

A read timeout only counts silence, so a peer sending a header line every few seconds holds
a request for ever; and a thread blocked in `recv` does not see SIGTERM. While a request
waits for its answer (`WatchedConnection.getresponse`) or a body is read (`watching`), its
socket is registered here; the watcher shuts it down at its deadline or when `INTERRUPTS`
says stop, the blocked call returns at once, and the request's owner turns that into
`DeadlineExceeded` or `Interrupted`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ducc.interrupts import INTERRUPTS, SLICE


@dataclass(slots=True)
class Watched:
    """One registered socket; `fired` says why the watcher shut it down, if it did."""

    sock: socket.socket
    deadline: float  # time.monotonic(); inf: only a stop ends it
    fired: str | None = None  # "deadline" or "interrupted"


@dataclass
class _Watcher:
    lock: threading.Condition = field(default_factory=threading.Condition)
    entries: dict[int, Watched] = field(default_factory=dict)
    heap: list[tuple[float, int]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)
    thread: threading.Thread | None = None

    def add(self, entry: Watched) -> int:
        with self.lock:
            key = next(self.ids)
            self.entries[key] = entry
            heapq.heappush(self.heap, (entry.deadline, key))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self.thread.start()
            self.lock.notify()
            return key

    def remove(self, key: int) -> None:
        with self.lock:
            self.entries.pop(key, None)

    def _run(self) -> None:
        while True:
            with self.lock:
                while not self.entries:
                    self.heap.clear()
                    self.lock.wait()
                self._fire(time.monotonic())
                self.lock.wait(self._timeout(time.monotonic()))

    def _timeout(self, now: float) -> float:
        while self.heap and self.heap[0][1] not in self.entries:
            heapq.heappop(self.heap)
        nearest = self.heap[0][0] - now if self.heap else SLICE
        return max(0.0, min(SLICE, nearest))

    def _fire(self, now: float) -> None:
        """Shut down what is due (lock held); a fired entry is forgotten."""
        stopping = INTERRUPTS.stopping
        for key, entry in list(self.entries.items()):
            if stopping or entry.deadline <= now:
                entry.fired = "interrupted" if stopping else "deadline"
                with contextlib.suppress(OSError):
                    entry.sock.shutdown(socket.SHUT_RDWR)
                del self.entries[key]


_WATCHER = _Watcher()
_local = threading.local()


class Watch:
    """`sock` watched until `release()`: for a body read in many calls, registered once (a
    registration wakes the watcher thread, which then competes with the reader)."""

    def __init__(self, sock: Any, deadline: float = float("inf")) -> None:
        self.entry = Watched(sock, deadline) if isinstance(sock, socket.socket) else None
        self._key = _WATCHER.add(self.entry) if self.entry is not None else None

    @property
    def fired(self) -> str | None:
        return self.entry.fired if self.entry is not None else None

    def release(self) -> None:
        if self._key is not None:
            _WATCHER.remove(self._key)
            self._key = None


@contextlib.contextmanager
def watching(sock: Any, deadline: float = float("inf")) -> Iterator[Watched | None]:
    """Watch `sock` (a socket, or None: nothing to watch) until the block ends."""
    watch = Watch(sock, deadline)
    try:
        yield watch.entry
    finally:
        watch.release()


@contextlib.contextmanager
def request_deadline(deadline: float) -> Iterator[list[Watched]]:
    """Give the requests this thread sends in the block `deadline` (time.monotonic()) for
    their answers' headers; the yielded list collects what was watched (to learn whether
    the watcher fired)."""
    previous = getattr(_local, "scope", None)
    scope: tuple[float, list[Watched]] = (deadline, [])
    _local.scope = scope
    try:
        yield scope[1]
    finally:
        _local.scope = previous


def fired(entries: list[Watched]) -> str | None:
    """Why the watcher shut down one of `entries`, if it did."""
    return next((e.fired for e in entries if e.fired), None)


class _WatchedResponses:
    """Mixed into urllib3's connections: the wait for the status line and headers is
    watched with the deadline of the thread's current request."""

    sock: socket.socket | None

    def getresponse(self, *args: Any, **kw: Any) -> Any:
        scope: tuple[float, list[Watched]] | None = getattr(_local, "scope", None)
        deadline = scope[0] if scope is not None else float("inf")
        with watching(self.sock, deadline) as entry:
            if entry is not None and scope is not None:
                scope[1].append(entry)
            return super().getresponse(*args, **kw)  # type: ignore[misc]


class WatchedHTTPConnection(_WatchedResponses, HTTPConnection):
    pass


class WatchedHTTPSConnection(_WatchedResponses, HTTPSConnection):
    pass


class WatchedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = WatchedHTTPConnection


class WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = WatchedHTTPSConnection


POOL_CLASSES = {"http": WatchedHTTPConnectionPool, "https": WatchedHTTPSConnectionPool}


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """An adapter whose connections' waits for an answer are watched (deadlines, stops)."""

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **kw: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kw)
        manager.pool_classes_by_scheme = POOL_CLASSES
        return manager
