"""The one request chokepoint per registry: auth, retries, deadlines, rate limits, errors.

`RegistryClient.request` is the only place that sends a request to a registry. It probes
`/v2/` once, answers Bearer or Basic challenges, retries transient faults (connection errors,
5xx, 429) with exponential backoff and jitter honouring `Retry-After`, waits out an exhausted
`ratelimit-remaining`, bounds concurrent requests and turns error bodies into typed errors.
Each request has a deadline for all its attempts and backoffs (the waits a registry asks
for count against `max_wait` instead), every body a minimum rate (`pace.py`), and a client
may be `bounded` by an image's deadline. A registry that used up a whole deadline is left
alone for one more deadline, so that a stalled registry costs the others little.
"""

from __future__ import annotations

import contextlib
import copy
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from ducc import __version__, log
from ducc.errors import (
    DeadlineExceeded,
    Interrupted,
    RateLimited,
    RegistryError,
    RegistryStalled,
    TransientError,
)
from ducc.metrics import METRICS
from ducc.reference import Reference
from ducc.registry.auth import TokenCache
from ducc.registry.authorizer import Authorizer
from ducc.registry.credentials import CredentialStore
from ducc.registry.faults import (
    error_from_response,
    parse_rate_limit,
    rate_limit_remaining,
    read_body,
)
from ducc.registry.pace import DEADLINE_HINT, NO_DEADLINE, Pace
from ducc.registry.watch import POOL_CLASSES, Watched, fired, request_deadline
from ducc.signals import INTERRUPTS, SLICE, interruptible_sleep

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # A request with all its attempts and backoffs, until its answer is complete (a blob's
    # body instead must keep up `min_rate`, however long it is).
    deadline: float = 120.0
    min_rate: float = 1024.0  # bytes/s every body must reach over `rate_window`; 0: no check
    rate_window: float = 30.0
    retry_attempts: int = 5  # attempts in all, for transient faults only
    backoff_initial: float = 1.0
    backoff_cap: float = 60.0
    max_wait: float = 300.0  # Retry-After and rate-limit waits obeyed per request; beyond: fail
    max_concurrent: int = 5  # requests in flight per registry
    page_cap: int = 500  # tag list pages
    tags_page_size: int | None = None  # `n` on the first tag list request; None: registry's
    user_agent: str = f"ducc/{__version__}"


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete answer: status, headers, body and the final URL (after redirects)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


class _RegistrySession(requests.Session):
    """A session that drops `Authorization` on any redirect leaving the origin (a CDN gets
    no registry token, distribution-spec "API") and never adds netrc credentials."""

    def rebuild_auth(self, prepared_request: Any, response: requests.Response) -> None:
        old, new = urlsplit(response.request.url or ""), urlsplit(prepared_request.url or "")
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            prepared_request.headers.pop("Authorization", None)


def _no_netrc(request: Any) -> Any:
    return request


@dataclass(slots=True)
class _RateState:
    blocked_until: float = 0.0
    stalled_until: float = 0.0  # after a request used up its whole deadline
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass(slots=True)
class _Budget:
    """One request's time: its deadline on the client's clock, moved on by the waits the
    registry asked for (which count against `max_wait` instead)."""

    deadline: float
    waited: float = 0.0


class RegistryClient:
    """Speaks to one registry API host (`scheme://api_host`); safe to share between threads."""

    def __init__(
        self,
        scheme: str,
        api_host: str,
        *,
        settings: RegistrySettings,
        credentials: CredentialStore,
        session: requests.Session | None = None,
        sleep: Sleep = interruptible_sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.scheme = scheme
        self.api_host = api_host
        self.base_url = f"{scheme}://{api_host}"
        self.settings = settings
        self.session = session if session is not None else new_session(settings)
        self._sleep = sleep
        self._clock = clock
        self._slots = threading.BoundedSemaphore(max(1, settings.max_concurrent))
        self._rate = _RateState()
        self._image_end = NO_DEADLINE  # see `bounded`
        self._log = log.get("registry").bind(registry=api_host)
        self.authorizer = Authorizer(
            self, credentials=credentials, tokens=TokenCache(clock), log=self._log
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    def bounded(self, seconds: float) -> RegistryClient:
        """This client (sharing its connections, tokens and limits) with every request and
        body ending at the latest `seconds` from now: an image's deadline."""
        clone = copy.copy(self)
        clone._image_end = min(self._image_end, self._clock() + seconds)
        return clone

    def request(
        self,
        method: str,
        target: str,
        *,
        repository: str,
        headers: Mapping[str, str] | None = None,
        counted: bool = False,
    ) -> requests.Response:
        """Send `method target` (a `/v2/...` path or an absolute URL) and return a 2xx response.

        The response is streamed: the caller closes it (`with client.request(...) as r`).
        `counted` marks requests that count against pull limits (manifest GETs): they wait
        while the registry reports its limit exhausted.
        """
        url = self.absolute(target)
        budget = self._budget()
        with self._tripping():
            return self._retrying(budget)(
                self._attempt,
                method,
                url,
                repository,
                dict(headers or {}),
                counted=counted,
                budget=budget,
            )

    def fetch(
        self,
        method: str,
        target: str,
        *,
        repository: str,
        limit: int,
        headers: Mapping[str, str] | None = None,
        counted: bool = False,
    ) -> Fetched:
        """Like `request`, but reads the whole body (at most `limit` bytes) inside the retries."""
        url = self.absolute(target)
        budget = self._budget()
        shown = self._shown(url)

        def attempt() -> Fetched:
            with self._attempt(
                method, url, repository, dict(headers or {}), counted=counted, budget=budget
            ) as response:
                pace = self.pace(f"{method} {shown}", budget.deadline)
                body = (
                    b""
                    if method == "HEAD"
                    else read_body(response, limit, shown, self.api_host, pace)
                )
                return Fetched(response.status_code, response.headers, body, response.url)

        with self._tripping():
            return self._retrying(budget)(attempt)

    def pace(self, what: str, deadline: float = NO_DEADLINE) -> Pace:
        """The pace a body must keep: the minimum rate, and `deadline` or the image's."""
        end = min(deadline, self._image_end)
        return Pace(
            f"{self.api_host}: {what}",
            min_rate=self.settings.min_rate,
            window=self.settings.rate_window,
            deadline=end,
            clock=self._clock,
            image=end >= self._image_end and end != NO_DEADLINE,
        )

    def deadline_from_now(self) -> float:
        """A request's deadline (or the image's, if sooner) for a request sent now."""
        return min(self._clock() + self.settings.deadline, self._image_end)

    def _budget(self) -> _Budget:
        return _Budget(self.deadline_from_now())

    def _retrying(self, budget: _Budget) -> tenacity.Retrying:
        attempts = tenacity.stop_after_attempt(max(1, self.settings.retry_attempts))
        return tenacity.Retrying(
            stop=attempts | _StopAt(self._clock, budget),
            wait=lambda state: self._wait(state, budget),
            retry=tenacity.retry_if_exception(lambda exc: self._retryable(exc, budget)),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    @contextlib.contextmanager
    def _tripping(self) -> Iterator[None]:
        """A request that used up its whole deadline marks the registry stalled."""
        try:
            yield
        except DeadlineExceeded as exc:
            if not exc.image:
                with self._rate.lock:
                    self._rate.stalled_until = self._clock() + self.settings.deadline
                self._log.warning("registry_stalled", seconds=self.settings.deadline)
            raise

    def absolute(self, target: str) -> str:
        return urljoin(self.base_url + "/", target)

    def same_host(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == (self.scheme, self.api_host)

    def _attempt(
        self,
        method: str,
        url: str,
        repository: str,
        headers: dict[str, str],
        *,
        counted: bool,
        budget: _Budget,
    ) -> requests.Response:
        if counted:
            self._rate_gate(budget)
        authorization = self.authorizer.header(repository) if self.same_host(url) else None
        end = budget.deadline
        response = self.send(method, url, _with_auth(headers, authorization), deadline=end)
        if response.status_code == 401 and self.same_host(url):
            challenge_header = response.headers.get("WWW-Authenticate", "")
            renewed = self.authorizer.renew(repository, authorization, challenge_header)
            if renewed is not None:
                response.close()
                response = self.send(method, url, _with_auth(headers, renewed), deadline=end)
        self._note_rate_limit(response)
        if response.ok:
            return response
        try:
            raise error_from_response(response, method, self._shown(url), self.api_host)
        finally:
            response.close()

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        auth: Any = None,
        deadline: float | None = None,
    ) -> requests.Response:
        """One HTTP exchange inside the concurrency bound, its headers in by `deadline`
        (default: a request's deadline from now); transport faults become errors."""
        INTERRUPTS.check()
        self._check_stalled()
        end = self._budget().deadline if deadline is None else deadline
        started = self._clock()
        watched: list[Watched] = []
        with self._slot(end, method, url):
            left = end - self._clock()
            timeout = (
                min(self.settings.connect_timeout, left),
                min(self.settings.read_timeout, left),
            )
            try:
                with request_deadline(time.monotonic() + left) as watched:
                    response = self.session.request(
                        method,
                        url,
                        headers=dict(headers),
                        auth=auth,
                        stream=True,
                        allow_redirects=True,
                        timeout=timeout,
                    )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._stopped_or_late(fired(watched), end, method, url)
                raise TransientError(
                    f"{self.api_host}: {method} {self._shown(url)}: {type(exc).__name__}: "
                    f"{log.redact(str(exc))}",
                    hint="the registry could not be reached; check the network and try again",
                ) from None
            except requests.RequestException as exc:
                raise RegistryError(
                    f"{self.api_host}: {method} {self._shown(url)}: {log.redact(str(exc))}"
                ) from None
            reason = fired(watched)
            if reason is not None:  # headers cut short by the watcher read as complete
                response.close()
                self._stopped_or_late(reason, end, method, url)
        self._log.debug(
            "registry_request",
            method=method,
            url=self._shown(url),
            status=response.status_code,
            seconds=round(self._clock() - started, 3),
        )
        METRICS.inc(
            "ducc_registry_requests_total", registry=self.api_host, code=str(response.status_code)
        )
        return response

    @contextlib.contextmanager
    def _slot(self, end: float, method: str, url: str) -> Iterator[None]:
        """One of the registry's concurrent request slots, waited for until `end` at most."""
        while not self._slots.acquire(timeout=SLICE):
            INTERRUPTS.check()
            if self._clock() >= end:
                raise self._late(end, method, url)
        try:
            yield
        finally:
            self._slots.release()

    def _stopped_or_late(self, reason: str | None, end: float, method: str, url: str) -> None:
        """After a broken exchange: a stop or a deadline explains it (and is raised)."""
        if reason == "interrupted" or INTERRUPTS.stopping:
            INTERRUPTS.check()
            raise Interrupted("interrupted")
        if reason == "deadline" or self._clock() >= end:
            raise self._late(end, method, url)

    def _late(self, end: float, method: str, url: str) -> DeadlineExceeded:
        image = end >= self._image_end
        what = (
            "the image's deadline"
            if image
            else (
                f"the request's deadline of {self.settings.deadline:g} s (DUCC_REGISTRY_DEADLINE)"
            )
        )
        return DeadlineExceeded(
            f"{self.api_host}: {method} {self._shown(url)}: no answer within {what}, "
            "retries included",
            image=image,
            hint=DEADLINE_HINT,
        )

    def _check_stalled(self) -> None:
        with self._rate.lock:
            left = self._rate.stalled_until - self._clock()
        if left > 0:
            raise RegistryStalled(
                f"{self.api_host}: not asked: the registry used up a whole request deadline "
                f"a moment ago; it is asked again in {left:.0f} s",
                hint="the registry stalls or is too slow; its images are tried again later",
            )

    def _shown(self, url: str) -> str:
        """The URL as messages show it: a path on the registry, or a redacted foreign URL."""
        if self.same_host(url):
            parts = urlsplit(url)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return log.redact(url)

    # --- retries and rate limits ------------------------------------------------------------

    def pause(self, attempt: int) -> None:
        """Back off before attempt `attempt` + 1 of something outside `request` (a resume)."""
        delay = min(self.settings.backoff_cap, self.settings.backoff_initial * 2 ** (attempt - 1))
        self._sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto

    def _retryable(self, exc: BaseException, budget: _Budget) -> bool:
        if not isinstance(exc, TransientError):
            return False
        asked = exc.retry_after
        return asked is None or budget.waited + asked <= self.settings.max_wait

    def _wait(self, state: tenacity.RetryCallState, budget: _Budget) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return self._granted(budget, max(0.0, exc.retry_after))
        # Exponential backoff with jitter in proportion to it: a fixed jitter (tenacity's is
        # up to 1 s) would swamp a short backoff an operator asked for.
        initial = self.settings.backoff_initial
        exponential = initial * 2.0 ** min(state.attempt_number - 1, 64)
        jitter = random.uniform(0.0, initial)  # noqa: S311 - spreads retries, not a secret
        left = max(0.0, budget.deadline - self._clock())
        return min(self.settings.backoff_cap, exponential + jitter, left)

    def _granted(self, budget: _Budget, wait: float) -> float:
        """A wait the registry asked for: it moves the request's deadline on (not past the
        image's) and counts against `max_wait`."""
        budget.waited += wait
        budget.deadline = min(budget.deadline + wait, self._image_end)
        return min(wait, max(0.0, budget.deadline - self._clock()))

    def _before_sleep(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self._log.warning(
            "registry_retry",
            attempt=state.attempt_number,
            wait=round(state.upcoming_sleep, 3),
            error=str(exc),
        )

    def _note_rate_limit(self, response: requests.Response) -> None:
        remaining = rate_limit_remaining(response.headers)
        if remaining is not None:
            METRICS.set("ducc_registry_ratelimit_remaining", remaining, registry=self.api_host)
        wait = parse_rate_limit(response.headers)
        if wait is None:
            return
        with self._rate.lock:
            self._rate.blocked_until = max(self._rate.blocked_until, self._clock() + wait)
        self._log.warning("rate_limit_exhausted", seconds=round(wait, 1))

    def _rate_gate(self, budget: _Budget) -> None:
        with self._rate.lock:
            wait = self._rate.blocked_until - self._clock()
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
        self._sleep(self._granted(budget, wait))


class _StopAt(tenacity.stop.stop_base):
    """Stop retrying once the request's deadline has passed."""

    def __init__(self, clock: Clock, budget: _Budget) -> None:
        self._clock = clock
        self._budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self._clock() >= self._budget.deadline


def _with_auth(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    return {**headers, "Authorization": authorization} if authorization else headers


def new_session(settings: RegistrySettings) -> requests.Session:
    """The HTTP session a registry client uses (a `Registries` session_factory may wrap it)."""
    session = _RegistrySession()
    session.auth = _no_netrc
    session.headers["User-Agent"] = settings.user_agent
    pool = max(10, 2 * settings.max_concurrent)
    adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class _WatchedAdapter(requests.adapters.HTTPAdapter):
    """Connections whose wait for an answer is watched by `watch.py` (deadlines, stops)."""

    def init_poolmanager(self, *args: Any, **kw: Any) -> None:
        super().init_poolmanager(*args, **kw)
        self.poolmanager.pool_classes_by_scheme = POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **kw: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kw)
        manager.pool_classes_by_scheme = POOL_CLASSES
        return manager


class Registries:
    """One client per (scheme, API host), so Docker Hub's aliases share tokens and limits."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        credentials: CredentialStore | None = None,
        *,
        sleep: Sleep = interruptible_sleep,
        clock: Clock = time.monotonic,
        session_factory: Callable[[RegistrySettings], requests.Session] = new_session,
    ) -> None:
        self.settings = settings or RegistrySettings()
        self.credentials = credentials if credentials is not None else CredentialStore()
        self._sleep = sleep
        self._clock = clock
        self._session_factory = session_factory
        self._clients: dict[tuple[str, str], RegistryClient] = {}
        self._lock = threading.Lock()

    def client(self, ref: Reference) -> RegistryClient:
        return self.for_host(ref.scheme, ref.api_host)

    def for_host(self, scheme: str, api_host: str) -> RegistryClient:
        with self._lock:
            key = (scheme, api_host)
            if key not in self._clients:
                self._clients[key] = RegistryClient(
                    scheme,
                    api_host,
                    settings=self.settings,
                    credentials=self.credentials,
                    session=self._session_factory(self.settings),
                    sleep=self._sleep,
                    clock=self._clock,
                )
            return self._clients[key]

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.session.close()
            self._clients.clear()

    def __enter__(self) -> Registries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
