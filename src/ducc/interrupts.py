"""The interruption flag: signals set it, the code polls it where it is safe to stop.

SIGINT and SIGTERM note that ducc must stop, SIGHUP that the recipes should be re-read
(`ducc.service.signals` installs the handlers, which only store a number here). Work calls
`check()`, which raises `Interrupted` once per thread; waits use `sleep()`, which looks at
the flag several times a second. Inside `shielded()` (opening, publishing or aborting a
transaction) `check()` does not raise: the holder checks once it has reached a consistent
state, so a transaction is finished or aborted, never left in doubt.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator

from ducc import log
from ducc.errors import Interrupted

_log = log.get("signals")
SLICE = 0.2  # seconds a wait goes without looking at the flags


class Interrupts:
    def __init__(self) -> None:
        self.received: int | None = None  # SIGINT or SIGTERM
        self.hangup = False  # SIGHUP since the last `take_hangup()`
        self._generation = 0  # bumped by `begin()`, so old raises do not count
        self._local = threading.local()

    def note_stop(self, signum: int) -> None:
        """SIGINT or SIGTERM arrived (called from a signal handler: only stores a number)."""
        self.received = signum

    def note_hangup(self) -> None:
        """SIGHUP arrived (called from a signal handler)."""
        self.hangup = True

    def begin(self) -> None:
        """Forget earlier signals: handlers are being installed anew. An `Interrupted` raised
        before does not count against the threads of the new run."""
        self.received, self.hangup = None, False
        self._generation += 1

    @property
    def stopping(self) -> bool:
        """SIGINT or SIGTERM arrived."""
        return self.received is not None

    def take_hangup(self) -> bool:
        """Whether SIGHUP arrived since the last call (several count as one)."""
        if not self.hangup:
            return False
        self.hangup = False
        return True

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Hold signals back in this thread while the block runs; the caller decides when
        to `check()`."""
        self._local.depth = self._depth + 1
        try:
            yield
        finally:
            self._local.depth -= 1

    @property
    def _depth(self) -> int:
        depth: int = getattr(self._local, "depth", 0)
        return depth

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived, unless shielded or this thread already
        raised it (its cleanup code may run on)."""
        if self.received is None or self._depth:
            return
        if getattr(self._local, "raised", None) == self._generation:
            return
        self._local.raised = self._generation
        name = signal.Signals(self.received).name
        _log.warning("signal_received", signal=name)
        raise Interrupted(f"interrupted by {name}")

    def sleep(self, seconds: float) -> None:
        """Wait `seconds`, but raise `Interrupted` within a fraction of a second of a signal."""
        end = time.monotonic() + max(0.0, seconds)
        self.check()
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(SLICE, left))
            self.check()

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for `event` at most `seconds`; return early on SIGHUP, raise on a stop."""
        end = time.monotonic() + max(0.0, seconds)
        while not event.is_set() and not self.hangup:
            self.check()
            left = end - time.monotonic()
            if left <= 0:
                return False
            event.wait(min(SLICE, left))
        self.check()
        return event.is_set()


INTERRUPTS = Interrupts()


def interruptible_sleep(seconds: float) -> None:
    """`time.sleep` that ends within a fraction of a second of SIGINT or SIGTERM."""
    INTERRUPTS.sleep(seconds)
