"""The one request chokepoint per registry: auth, retries, deadlines, rate limits, errors.

`RegistryClient.request` is the only place that sends a request to a registry. It probes
`/v2/` once, answers Bearer or Basic challenges, retries transient faults (connection errors,
5xx, 429) with exponential backoff and jitter honouring `Retry-After`, waits out an exhausted
`ratelimit-remaining`, bounds concurrent requests and turns error bodies into typed errors.
A registry behind a pull-through proxy (`DUCC_<R>_PROXY`) gets a client for the proxy whose
repository names carry the proxy's prefix (`/v2/<prefix>/<repository>/...`).

Each request has a deadline for all its attempts and backoffs (the waits a registry asks
for count against `max_wait` instead), every body a minimum rate (`pace.py`), and a client
may be `bounded` by an image's deadline. A registry that used up a whole deadline is left
alone for one more deadline, so that a stalled registry costs the others little.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from ducc import log
from ducc.errors import (
    DeadlineExceeded,
    Interrupted,
    RegistryError,
    TransientError,
)
from ducc.interrupts import INTERRUPTS, SLICE, interruptible_sleep
from ducc.metrics import METRICS
from ducc.oci.reference import Reference
from ducc.registry.auth import TokenCache
from ducc.registry.authorizer import Authorizer
from ducc.registry.credentials import CredentialStore
from ducc.registry.faults import (
    error_from_response,
    read_body,
)
from ducc.registry.pace import NO_DEADLINE, Pace
from ducc.registry.proxies import Proxy
from ducc.registry.session import new_session
from ducc.registry.settings import RegistrySettings
from ducc.registry.timing import Budget, Timing
from ducc.registry.watch import Watched, fired, request_deadline

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Fetched:
    """A complete answer: status, headers, body and the final URL (after redirects)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str


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
        prefix: str = "",
    ) -> None:
        self.scheme = scheme
        self.api_host = api_host
        self.prefix = prefix.strip("/")  # a pull-through proxy's repository prefix
        self.base_url = f"{scheme}://{api_host}"
        self.settings = settings
        self.session = session if session is not None else new_session(settings)
        self._clock = clock
        self._slots = threading.BoundedSemaphore(max(1, settings.max_concurrent))
        self._log = log.get("registry").bind(registry=api_host)
        self.timing = Timing(api_host, settings, sleep, clock, self._log)
        self.authorizer = Authorizer(
            self, credentials=credentials, tokens=TokenCache(clock), log=self._log
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    def scoped(self, repository: str) -> str:
        """The repository as this host names it (behind a proxy: `<prefix>/<repository>`)."""
        return f"{self.prefix}/{repository}" if self.prefix and repository else repository

    def bounded(self, seconds: float) -> RegistryClient:
        """This client (sharing its connections, tokens and limits) with every request and
        body ending at the latest `seconds` from now: an image's deadline."""
        clone = copy.copy(self)
        clone.timing = self.timing.bounded(seconds)
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
        budget = self.timing.budget()
        with self.timing.tripping():
            return self.timing.retrying(budget)(
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
        budget = self.timing.budget()
        shown = self._shown(url)

        def attempt() -> Fetched:
            with self._attempt(
                method, url, repository, dict(headers or {}), counted=counted, budget=budget
            ) as response:
                pace = self.timing.pace(f"{method} {shown}", budget.deadline)
                body = (
                    b""
                    if method == "HEAD"
                    else read_body(response, limit, shown, self.api_host, pace)
                )
                return Fetched(response.status_code, response.headers, body, response.url)

        with self.timing.tripping():
            return self.timing.retrying(budget)(attempt)

    def pace(self, what: str, deadline: float = NO_DEADLINE) -> Pace:
        """The pace a body must keep (see `Timing.pace`)."""
        return self.timing.pace(what, deadline)

    def deadline_from_now(self) -> float:
        return self.timing.deadline_from_now()

    def pause(self, attempt: int) -> None:
        """Back off before attempt `attempt` + 1 of something outside `request` (a resume)."""
        self.timing.pause(attempt)

    def absolute(self, target: str) -> str:
        """`target` as a URL; a `/v2/<repository>/...` path gets the proxy's prefix."""
        if self.prefix and target.startswith("/v2/") and target != "/v2/":
            target = f"/v2/{self.prefix}/{target.removeprefix('/v2/')}"
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
        budget: Budget,
    ) -> requests.Response:
        if counted:
            self.timing.rate_gate(budget)
        repository = self.scoped(repository)
        authorization = self.authorizer.header(repository) if self.same_host(url) else None
        end = budget.deadline
        response = self.send(method, url, _with_auth(headers, authorization), deadline=end)
        if response.status_code == 401 and self.same_host(url):
            challenge_header = response.headers.get("WWW-Authenticate", "")
            renewed = self.authorizer.renew(repository, authorization, challenge_header)
            if renewed is not None:
                response.close()
                response = self.send(method, url, _with_auth(headers, renewed), deadline=end)
        self.timing.note_rate_limit(response)
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
        self.timing.check_stalled()
        end = self.timing.deadline_from_now() if deadline is None else deadline
        started = self._clock()
        watched: list[Watched] = []
        with self._slot(end, method, url):
            left = end - self._clock()
            if left <= 0:
                raise self._late(end, method, url)
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
        return self.timing.late(end, f"{method} {self._shown(url)}")

    def _shown(self, url: str) -> str:
        """The URL as messages show it: a path on the registry, or a redacted foreign URL."""
        if self.same_host(url):
            parts = urlsplit(url)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return log.redact(url)


def _with_auth(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    return {**headers, "Authorization": authorization} if authorization else headers


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
        proxies: tuple[Proxy, ...] = (),
    ) -> None:
        self.settings = settings or RegistrySettings()
        self.credentials = credentials if credentials is not None else CredentialStore()
        self.proxies = proxies
        self._sleep = sleep
        self._clock = clock
        self._session_factory = session_factory
        self._clients: dict[tuple[str, str, str], RegistryClient] = {}
        self._lock = threading.Lock()

    def client(self, ref: Reference) -> RegistryClient:
        """The client for `ref`'s registry, or for the pull-through proxy that serves it."""
        proxy = next((p for p in self.proxies if p.serves(ref.registry)), None)
        if proxy is not None:
            return self.for_host(proxy.scheme or ref.scheme, proxy.host, proxy.path)
        return self.for_host(ref.scheme, ref.api_host)

    def for_host(self, scheme: str, api_host: str, prefix: str = "") -> RegistryClient:
        with self._lock:
            key = (scheme, api_host, prefix)
            if key not in self._clients:
                self._clients[key] = RegistryClient(
                    scheme,
                    api_host,
                    settings=self.settings,
                    credentials=self.credentials,
                    session=self._session_factory(self.settings),
                    sleep=self._sleep,
                    clock=self._clock,
                    prefix=prefix,
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
