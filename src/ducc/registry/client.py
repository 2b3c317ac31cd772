"""The one request chokepoint per registry: auth, retries, rate limits, concurrency, errors.

`RegistryClient.request` is the only place that sends a request to a registry. It probes
`/v2/` once, answers Bearer or Basic challenges, retries transient faults (connection errors,
5xx, 429) with exponential backoff and jitter honouring `Retry-After`, waits out an exhausted
`ratelimit-remaining`, bounds concurrent requests and turns error bodies into typed errors.
A registry behind a pull-through proxy (`DUCC_<R>_PROXY`) gets a client for the proxy whose
repository names carry the proxy's prefix (`/v2/<prefix>/<repository>/...`).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from ducc import __version__, log
from ducc.errors import RateLimited, RegistryError, TransientError
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
from ducc.registry.proxies import Proxy

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RegistrySettings:
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry_attempts: int = 5  # attempts in all, for transient faults only
    backoff_initial: float = 1.0
    backoff_cap: float = 60.0
    max_wait: float = 300.0  # the longest Retry-After or rate-limit wait obeyed; beyond: fail
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
    lock: threading.Lock = field(default_factory=threading.Lock)


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
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        prefix: str = "",
    ) -> None:
        self.scheme = scheme
        self.api_host = api_host
        self.prefix = prefix.strip("/")  # a pull-through proxy's repository prefix
        self.base_url = f"{scheme}://{api_host}"
        self.settings = settings
        self.session = session if session is not None else new_session(settings)
        self._sleep = sleep
        self._clock = clock
        self._slots = threading.BoundedSemaphore(max(1, settings.max_concurrent))
        self._rate = _RateState()
        self._log = log.get("registry").bind(registry=api_host)
        self.authorizer = Authorizer(
            self, credentials=credentials, tokens=TokenCache(clock), log=self._log
        )

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    def scoped(self, repository: str) -> str:
        """The repository as this host names it (behind a proxy: `<prefix>/<repository>`)."""
        return f"{self.prefix}/{repository}" if self.prefix and repository else repository

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
        return self._retrying()(
            self._attempt, method, url, repository, dict(headers or {}), counted
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

        def attempt() -> Fetched:
            with self._attempt(method, url, repository, dict(headers or {}), counted) as response:
                body = (
                    b""
                    if method == "HEAD"
                    else read_body(response, limit, self._shown(url), self.api_host)
                )
                return Fetched(response.status_code, response.headers, body, response.url)

        return self._retrying()(attempt)

    def _retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, self.settings.retry_attempts)),
            wait=self._wait,
            retry=tenacity.retry_if_exception(self._retryable),
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )

    def absolute(self, target: str) -> str:
        """`target` as a URL; a `/v2/<repository>/...` path gets the proxy's prefix."""
        if self.prefix and target.startswith("/v2/") and target != "/v2/":
            target = f"/v2/{self.prefix}/{target.removeprefix('/v2/')}"
        return urljoin(self.base_url + "/", target)

    def same_host(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == (self.scheme, self.api_host)

    def _attempt(
        self, method: str, url: str, repository: str, headers: dict[str, str], counted: bool
    ) -> requests.Response:
        if counted:
            self._rate_gate()
        repository = self.scoped(repository)
        authorization = self.authorizer.header(repository) if self.same_host(url) else None
        response = self.send(method, url, _with_auth(headers, authorization))
        if response.status_code == 401 and self.same_host(url):
            challenge_header = response.headers.get("WWW-Authenticate", "")
            renewed = self.authorizer.renew(repository, authorization, challenge_header)
            if renewed is not None:
                response.close()
                response = self.send(method, url, _with_auth(headers, renewed))
        self._note_rate_limit(response)
        if response.ok:
            return response
        try:
            raise error_from_response(response, method, self._shown(url), self.api_host)
        finally:
            response.close()

    def send(
        self, method: str, url: str, headers: Mapping[str, str], *, auth: Any = None
    ) -> requests.Response:
        """One HTTP exchange inside the concurrency bound; transport faults become errors."""
        started = self._clock()
        with self._slots:
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=dict(headers),
                    auth=auth,
                    stream=True,
                    allow_redirects=True,
                    timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientError(
                    f"{self.api_host}: {method} {self._shown(url)}: {type(exc).__name__}: "
                    f"{log.redact(str(exc))}",
                    hint="the registry could not be reached; check the network and try again",
                ) from None
            except requests.RequestException as exc:
                raise RegistryError(
                    f"{self.api_host}: {method} {self._shown(url)}: {log.redact(str(exc))}"
                ) from None
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

    def _retryable(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientError):
            return False
        return exc.retry_after is None or exc.retry_after <= self.settings.max_wait

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        # Exponential backoff with jitter in proportion to it: a fixed jitter (tenacity's is
        # up to 1 s) would swamp a short backoff an operator asked for.
        initial = self.settings.backoff_initial
        exponential = initial * 2.0 ** min(state.attempt_number - 1, 64)
        jitter = random.uniform(0.0, initial)  # noqa: S311 - spreads retries, not a secret
        return min(self.settings.backoff_cap, exponential + jitter)

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

    def _rate_gate(self) -> None:
        with self._rate.lock:
            wait = self._rate.blocked_until - self._clock()
        if wait <= 0:
            return
        if wait > self.settings.max_wait:
            error = RateLimited(
                f"{self.api_host}: the registry's pull limit is exhausted for {wait:.0f} s more",
                hint="authenticate (auth.json or DUCC_<registry>_USER/_PASS) or try later",
            )
            error.retry_after = wait
            raise error
        self._log.warning("rate_limit_wait", seconds=round(wait, 1))
        self._sleep(wait)


def _with_auth(headers: dict[str, str], authorization: str | None) -> dict[str, str]:
    return {**headers, "Authorization": authorization} if authorization else headers


def new_session(settings: RegistrySettings) -> requests.Session:
    """The HTTP session a registry client uses (a `Registries` session_factory may wrap it)."""
    session = _RegistrySession()
    session.auth = _no_netrc
    session.headers["User-Agent"] = settings.user_agent
    pool = max(10, 2 * settings.max_concurrent)
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Registries:
    """One client per (scheme, API host), so Docker Hub's aliases share tokens and limits."""

    def __init__(
        self,
        settings: RegistrySettings | None = None,
        credentials: CredentialStore | None = None,
        *,
        sleep: Sleep = time.sleep,
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
