"""A registry client's time: request deadlines, retries within them, the waits a registry
asks for, and the stall breaker.

Each request gets a `Budget`: a deadline (`deadline` seconds from now, or the image's if
sooner) for all its attempts and back-offs. A wait the registry asks for (`Retry-After`, an
exhausted pull limit) moves the deadline on and counts against `max_wait` instead, in all
per request. A request that runs out of time raises `DeadlineExceeded`; one that used up a
whole request deadline marks the registry stalled for one more deadline, and requests sent
meanwhile fail at once (`RegistryStalled`). Sleeps end within a fraction of a second of
SIGTERM (`ducc.interrupts.interruptible_sleep`).
"""

from __future__ import annotations

import contextlib
import copy
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests
import tenacity

from ducc.errors import DeadlineExceeded, RateLimited, RegistryStalled, TransientError
from ducc.metrics import METRICS
from ducc.registry.faults import parse_rate_limit, rate_limit_remaining
from ducc.registry.pace import DEADLINE_HINT, NO_DEADLINE, Pace
from ducc.registry.settings import RegistrySettings

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(slots=True)
class Budget:
    """One request's time: its deadline on the client's clock, moved on by the waits the
    registry asked for (`waited`, which counts against `max_wait` instead)."""

    deadline: float
    waited: float = 0.0


@dataclass(slots=True)
class _Shared:
    """What every image of one registry sees: its pull limit and whether it stalled."""

    blocked_until: float = 0.0
    stalled_until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Timing:
    def __init__(
        self, api_host: str, settings: RegistrySettings, sleep: Sleep, clock: Clock, log: Any
    ) -> None:
        self.api_host = api_host
        self.settings = settings
        self.sleep = sleep
        self.clock = clock
        self.image_end = NO_DEADLINE
        self._shared = _Shared()
        self._log = log

    def bounded(self, seconds: float) -> Timing:
        """The same registry's timing, everything ending by `seconds` from now."""
        clone = copy.copy(self)
        clone.image_end = min(self.image_end, self.clock() + seconds)
        return clone

    def deadline_from_now(self) -> float:
        """A request's deadline (or the image's, if sooner) for a request sent now."""
        return min(self.clock() + self.settings.deadline, self.image_end)

    def budget(self) -> Budget:
        return Budget(self.deadline_from_now())

    def pace(self, what: str, deadline: float = NO_DEADLINE) -> Pace:
        """The pace a body must keep: the minimum rate, and `deadline` or the image's."""
        end = min(deadline, self.image_end)
        return Pace(
            f"{self.api_host}: {what}",
            min_rate=self.settings.min_rate,
            window=self.settings.rate_window,
            deadline=end,
            clock=self.clock,
            image=end >= self.image_end and end != NO_DEADLINE,
        )

    # --- deadlines ----------------------------------------------------------------------

    def late(self, end: float, what: str) -> DeadlineExceeded:
        image = end >= self.image_end
        whose = (
            "the image's deadline"
            if image
            else (
                f"the request's deadline of {self.settings.deadline:g} s (DUCC_REGISTRY_DEADLINE)"
            )
        )
        return DeadlineExceeded(
            f"{self.api_host}: {what}: no answer within {whose}, retries included",
            image=image,
            hint=DEADLINE_HINT,
        )

    @contextlib.contextmanager
    def tripping(self) -> Iterator[None]:
        """A request that used up its whole deadline marks the registry stalled."""
        try:
            yield
        except DeadlineExceeded as exc:
            if not exc.image:
                with self._shared.lock:
                    self._shared.stalled_until = self.clock() + self.settings.deadline
                self._log.warning("registry_stalled", seconds=self.settings.deadline)
            raise

    def check_stalled(self) -> None:
        with self._shared.lock:
            left = self._shared.stalled_until - self.clock()
        if left > 0:
            raise RegistryStalled(
                f"{self.api_host}: not asked: the registry used up a whole request deadline "
                f"a moment ago; it is asked again in {left:.0f} s",
                hint="the registry stalls or is too slow; its images are tried again later",
            )

    # --- retries --------------------------------------------------------------------------

    def retrying(self, budget: Budget) -> tenacity.Retrying:
        attempts = tenacity.stop_after_attempt(max(1, self.settings.retry_attempts))
        return tenacity.Retrying(
            stop=attempts | _StopAt(self.clock, budget),
            wait=lambda state: self._wait(state, budget),
            retry=tenacity.retry_if_exception(lambda exc: self._retryable(exc, budget)),
            sleep=self.sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def pause(self, attempt: int) -> None:
        """Back off before attempt `attempt` + 1 of something outside `request` (a resume)."""
        settings = self.settings
        delay = min(settings.backoff_cap, settings.backoff_initial * 2 ** (attempt - 1))
        self.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto

    def _retryable(self, exc: BaseException, budget: Budget) -> bool:
        if not isinstance(exc, TransientError):
            return False
        asked = exc.retry_after
        return asked is None or budget.waited + asked <= self.settings.max_wait

    def _wait(self, state: tenacity.RetryCallState, budget: Budget) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return self._granted(budget, max(0.0, exc.retry_after))
        # Exponential backoff with jitter in proportion to it: a fixed jitter (tenacity's is
        # up to 1 s) would swamp a short backoff an operator asked for.
        initial = self.settings.backoff_initial
        exponential = initial * 2.0 ** min(state.attempt_number - 1, 64)
        jitter = random.uniform(0.0, initial)  # noqa: S311 - spreads retries, not a secret
        left = max(0.0, budget.deadline - self.clock())
        return min(self.settings.backoff_cap, exponential + jitter, left)

    def _granted(self, budget: Budget, wait: float) -> float:
        """A wait the registry asked for: it moves the request's deadline on (not past the
        image's) and counts against `max_wait`."""
        budget.waited += wait
        budget.deadline = min(budget.deadline + wait, self.image_end)
        return min(wait, max(0.0, budget.deadline - self.clock()))

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._log.warning(
            "registry_retry",
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 3),
            error=str(exc),
        )

    # --- pull limits ----------------------------------------------------------------------

    def note_rate_limit(self, response: requests.Response) -> None:
        remaining = rate_limit_remaining(response.headers)
        if remaining is not None:
            METRICS.set("ducc_registry_ratelimit_remaining", remaining, registry=self.api_host)
        wait = parse_rate_limit(response.headers)
        if wait is None:
            return
        with self._shared.lock:
            self._shared.blocked_until = max(self._shared.blocked_until, self.clock() + wait)
        self._log.warning("rate_limit_exhausted", seconds=round(wait, 1))

    def rate_gate(self, budget: Budget) -> None:
        with self._shared.lock:
            wait = self._shared.blocked_until - self.clock()
        if wait <= 0:
            return
        if budget.waited + wait > self.settings.max_wait:
            error = RateLimited(
                f"{self.api_host}: the registry's pull limit is exhausted for {wait:.0f} s more",
                hint="authenticate (auth.json or DUCC_<registry>_USER/_PASS) or try later",
            )
            error.retry_after = wait
            raise error
        self._log.warning("rate_limit_wait", seconds=round(wait, 1))
        self.sleep(self._granted(budget, wait))


class _StopAt(tenacity.stop.stop_base):
    """Stop retrying once the request's deadline has passed."""

    def __init__(self, clock: Clock, budget: Budget) -> None:
        self._clock = clock
        self._budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._clock() >= self._budget.deadline
