"""SIGINT and SIGTERM become an `Interrupted` error, raised where it is safe.

Inside `shielded()` (opening, publishing or aborting a transaction) a signal is only
noted; the code that holds the shield calls `check()` once it has reached a consistent
state, so a transaction is finished or aborted, never left in doubt. A second signal
while cleaning up is noted, not raised again.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ducc import log
from ducc.errors import Interrupted

_log = log.get("signals")


class Interrupts:
    def __init__(self) -> None:
        self.received: int | None = None
        self._depth = 0
        self._raised = False

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        first = self.received is None
        self.received = signum
        _log.warning("signal_received", signal=name, shielded=self._depth > 0)
        if first and self._depth == 0 and not self._raised:
            self._raised = True
            raise Interrupted(f"interrupted by {name}")

    @contextlib.contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Route SIGINT/SIGTERM here for the duration (main thread only; else a no-op)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Hold signals back while the block runs; the caller decides when to `check()`."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def check(self) -> None:
        """Raise `Interrupted` if a signal arrived and has not been raised yet."""
        if self.received is not None and self._depth == 0 and not self._raised:
            self._raised = True
            raise Interrupted(f"interrupted by {signal.Signals(self.received).name}")


INTERRUPTS = Interrupts()
