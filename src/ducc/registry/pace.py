"""How fast a body must arrive: a minimum rate over a window, and a deadline.

Every body ducc reads from a registry (blobs, manifests, tag lists, token answers) goes
through a `Pace`: one byte per second passes any read timeout, so the bytes that arrived in
each window are counted and a transfer below `min_rate` fails as `TransferTooSlow` (retried
or resumed like a broken one); past its deadline it fails as `DeadlineExceeded`. Reads
return as soon as any bytes are there (`read_some`), so a trickle is measured as it comes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ducc.errors import DeadlineExceeded, TransferTooSlow

Clock = Callable[[], float]
NO_DEADLINE = float("inf")


class Pace:
    """Counts one body's bytes; `arrived(n)` raises when the transfer is too slow or late."""

    def __init__(
        self,
        what: str,  # for messages: "<registry>: <method> <path>"
        *,
        min_rate: float,
        window: float,
        deadline: float = NO_DEADLINE,
        clock: Clock = time.monotonic,
        image: bool = False,
    ) -> None:
        self.what = what
        self.image = image  # the deadline is an image's, not one request's
        self.min_rate = min_rate
        self.window = window
        self.deadline = deadline
        self._clock = clock
        self._mark_time = clock()
        self._mark_bytes = 0
        self.total = 0

    def arrived(self, count: int) -> None:
        self.total += count
        now = self._clock()
        if now >= self.deadline:
            whose = "the image's deadline" if self.image else "its deadline"
            raise DeadlineExceeded(
                f"{self.what}: the answer was not complete by {whose} ({self.total} bytes arrived)",
                image=self.image,
                hint=DEADLINE_HINT,
            )
        if self.min_rate <= 0 or now - self._mark_time < self.window:
            return
        got = self.total - self._mark_bytes
        if got < self.min_rate * self.window:
            raise TransferTooSlow(
                f"{self.what}: transfer too slow: {got} bytes in {now - self._mark_time:.0f} s, "
                f"the minimum is {self.min_rate:g} bytes/s (DUCC_REGISTRY_MIN_RATE)"
            )
        self._mark_time, self._mark_bytes = now, self.total

    def seconds_left(self) -> float:
        return self.deadline - self._clock()

    def monotonic_deadline(self) -> float:
        """The deadline on `time.monotonic()` (the clock sockets are watched with)."""
        left = self.seconds_left()
        return time.monotonic() + left if left != NO_DEADLINE else NO_DEADLINE


DEADLINE_HINT = (
    "the registry stalled or answers too slowly; if it is merely slow, raise "
    "DUCC_REGISTRY_DEADLINE (a request) or --image-deadline (an image)"
)


def read_some(raw: Any, size: int, *, decode: bool) -> bytes:
    """Up to `size` bytes of a urllib3 response, returned as soon as any are there."""
    read1 = getattr(raw, "read1", None)
    data: bytes = (
        read1(size, decode_content=decode) if read1 else raw.read(size, decode_content=decode)
    )
    return data or b""


def socket_of(response: Any) -> Any:
    """The socket a streamed response is read from, or None."""
    connection = getattr(getattr(response, "raw", None), "connection", None)
    return getattr(connection, "sock", None)
