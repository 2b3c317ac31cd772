"""The signal handlers of a running command: SIGINT, SIGTERM (and for the loop SIGHUP) set
the interruption flag (`ducc.interrupts`) and nothing else.

A handler only stores a number (never a lock, a log line or an exception), so a storm of
signals cannot re-enter anything; many SIGHUPs before the loop looks are one reload.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from ducc.interrupts import INTERRUPTS, Interrupts

Handler = Callable[[int, FrameType | None], None]


@contextlib.contextmanager
def installed(interrupts: Interrupts = INTERRUPTS, *, hangup: bool = False) -> Iterator[Interrupts]:
    """Route SIGINT/SIGTERM (and SIGHUP with `hangup`) to `interrupts` for the duration (main
    thread only; else a no-op). Afterwards SIGHUP is ignored rather than left to its default
    action, which would kill a process that is still cleaning up."""
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    interrupts.begin()
    handlers: dict[signal.Signals, Handler] = {
        signal.SIGINT: lambda signum, _frame: interrupts.note_stop(signum),
        signal.SIGTERM: lambda signum, _frame: interrupts.note_stop(signum),
    }
    if hangup:
        handlers[signal.SIGHUP] = lambda _signum, _frame: interrupts.note_hangup()
    previous = {s: signal.signal(s, h) for s, h in handlers.items()}
    try:
        yield interrupts
    finally:
        for signum, handler in previous.items():
            default = signum == signal.SIGHUP and handler in (signal.SIG_DFL, None)
            signal.signal(signum, signal.SIG_IGN if default else handler)
