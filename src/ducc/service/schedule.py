"""When each image is checked next: every interval with jitter, backing off exponentially
while it keeps failing, at once when a webhook says it was pushed. Thread-safe: the
webhook server triggers images while the loop runs."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ducc.pipeline.report import Target

Key = tuple[str, str]  # (cvmfs_repo, image reference)


def key_of(target: Target) -> Key:
    return str(target.wish.cvmfs_repo), str(target.reference)


@dataclass(slots=True)
class Entry:
    target: Target
    next_check: float
    failures: int = 0
    status: str = "pending"


class Schedule:
    def __init__(
        self,
        interval: float,
        *,
        jitter: float = 0.1,
        max_backoff: float = 6 * 3600,
        rng: random.Random | None = None,
    ) -> None:
        self.interval = interval
        self.jitter = jitter
        self.max_backoff = max(max_backoff, interval)
        self._rng = rng or random.Random()  # noqa: S311 - spreading checks, not secrets
        self._entries: dict[Key, Entry] = {}
        self._lock = threading.Lock()

    def set_targets(self, targets: Iterable[Target], now: float) -> list[Key]:
        """Keep these images (new ones due now, known ones unchanged); return dropped keys."""
        with self._lock:
            wanted = {key_of(t): t for t in targets}
            dropped = [k for k in self._entries if k not in wanted]
            for key in dropped:
                del self._entries[key]
            for key, target in wanted.items():
                entry = self._entries.get(key)
                if entry is None:
                    self._entries[key] = Entry(target, now)
                else:
                    entry.target = target
            return dropped

    def add(self, target: Target, now: float) -> None:
        """An image found outside an expansion (a pushed tag matching a wildcard): due now."""
        with self._lock:
            entry = self._entries.setdefault(key_of(target), Entry(target, now))
            entry.next_check = min(entry.next_check, now)

    def due(self, now: float) -> list[Target]:
        with self._lock:
            return [e.target for e in self._entries.values() if e.next_check <= now]

    def done(self, key: Key, status: str, *, failed: bool, now: float) -> float | None:
        """Record a check's outcome; the next check time (None if the image was dropped)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.failures = entry.failures + 1 if failed else 0
            entry.status = status
            delay = self.interval
            if entry.failures:
                delay = min(self.interval * 2 ** (entry.failures - 1), self.max_backoff)
            spread = 1 + self._rng.uniform(-self.jitter, self.jitter)
            entry.next_check = now + delay * spread
            return entry.next_check

    def trigger(self, match: Callable[[Target], bool], now: float) -> list[Target]:
        """Make every image `match` accepts due now; return them."""
        with self._lock:
            hit = [e for e in self._entries.values() if match(e.target)]
            for entry in hit:
                entry.next_check = now
            return [e.target for e in hit]

    def next_wakeup(self) -> float | None:
        with self._lock:
            return min((e.next_check for e in self._entries.values()), default=None)

    def statuses(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for entry in self._entries.values():
                counts[entry.status] = counts.get(entry.status, 0) + 1
            return counts

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
