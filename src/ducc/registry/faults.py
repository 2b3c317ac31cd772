"""What a registry's answer means when it is not a success: typed errors, waits, bounded bodies.

Error bodies (`{"errors":[{"code","message"}]}`, distribution-spec "Error Codes") become
`NotFound`, `AuthError`, `RateLimited`, `TransientError` or `RegistryError` carrying the
registry's code. `Retry-After` may be seconds or an HTTP date; `ratelimit-remaining: 0;w=N`
(Docker Hub) turns into a wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3

from ducc import log
from ducc.errors import (
    AuthError,
    Interrupted,
    NotFound,
    RateLimited,
    RegistryError,
    TransientError,
)
from ducc.interrupts import INTERRUPTS
from ducc.registry.pace import NO_DEADLINE, Pace, read_some, socket_of
from ducc.registry.watch import Watched, watching

NOT_FOUND_CODES = frozenset({"NAME_UNKNOWN", "MANIFEST_UNKNOWN", "BLOB_UNKNOWN"})
AUTH_CODES = frozenset({"UNAUTHORIZED", "DENIED"})
MAX_ERROR_BODY = 64 * 1024
DEFAULT_RATE_LIMIT_WAIT = 60.0
# Faults while reading a body after the headers arrived: the transfer broke.
READ_FAULTS: tuple[type[BaseException], ...] = (
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    OSError,
)


def error_from_response(
    response: requests.Response, method: str, shown: str, registry: str
) -> RegistryError:
    """The typed error for a non-2xx `response` to `method shown` (the body is consumed)."""
    status = response.status_code
    code, message = _error_body(response) if method != "HEAD" else (None, "")
    text = f"{registry}: {method} {shown}: HTTP {status}" + (f" {code}" if code else "")
    text += f": {message}" if message else _REASONS.get(status, "")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    error: RegistryError
    if status == 429 or code == "TOOMANYREQUESTS":
        error = RateLimited(text, code=code, status=status, hint=_RATE_HINT)
        error.retry_after = retry_after
    elif status >= 500 or status == 408:
        error = TransientError(text, code=code, status=status)
        error.retry_after = retry_after
    elif status in (401, 403) or code in AUTH_CODES:
        error = AuthError(text, code=code, status=status, hint=_AUTH_HINT)
    elif status == 404 or code in NOT_FOUND_CODES:
        error = NotFound(text, code=code, status=status)
    else:
        error = RegistryError(text, code=code, status=status)
    return error


# What a bare status means (a HEAD answer has no body to explain itself).
_REASONS = {
    401: ": authentication required",
    403: ": access denied",
    404: ": not found (no such repository, tag or digest)",
    429: ": too many requests",
}
_RATE_HINT = "the registry limits requests; ducc retried with backoff; try again later"
_AUTH_HINT = (
    "the image may be private or not exist; provide credentials in auth.json, "
    "~/.docker/config.json or DUCC_<registry>_USER/_PASS"
)


def _error_body(response: requests.Response) -> tuple[str | None, str]:
    try:
        raw = response.raw.read(MAX_ERROR_BODY, decode_content=True) if response.raw else b""
    except READ_FAULTS:
        return None, ""
    try:
        data: Any = json.loads(raw)
        errors = data["errors"]
        codes = [str(e["code"]) for e in errors if isinstance(e, dict) and "code" in e]
        messages = [str(e.get("message") or "") for e in errors if isinstance(e, dict)]
    except (ValueError, KeyError, TypeError):
        text = raw.decode("utf-8", "replace").strip().splitlines()
        return None, log.redact(text[0][:200]) if text else ""
    return (codes[0] if codes else None), log.redact("; ".join(m for m in messages if m)[:500])


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from `Retry-After` (delay-seconds or HTTP-date, RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now())


def _header_number(value: str | None) -> tuple[int | None, float | None]:
    """`100;w=21600` -> (100, 21600.0); missing or malformed parts are None."""
    if not value:
        return None, None
    head, *params = (part.strip() for part in value.split(";"))
    count = int(head) if head.isdigit() else None
    window = None
    for param in params:
        key, _, number = param.partition("=")
        if key.strip() == "w" and number.strip().isdigit():
            window = float(number.strip())
    return count, window


def rate_limit_remaining(headers: Mapping[str, str]) -> int | None:
    """The pulls left in the window (`ratelimit-remaining: 20;w=21600` -> 20), if sent."""
    return _header_number(headers.get("ratelimit-remaining"))[0]


def parse_rate_limit(headers: Mapping[str, str]) -> float | None:
    """Seconds to hold back counted requests when `ratelimit-remaining` says 0, else None.

    The window is rolling, so one pull frees up after about window / limit seconds.
    """
    remaining, window = _header_number(headers.get("ratelimit-remaining"))
    if remaining is None or remaining > 0:
        return None
    limit, limit_window = _header_number(headers.get("ratelimit-limit"))
    window = window or limit_window
    if window is None:
        return DEFAULT_RATE_LIMIT_WAIT
    return window / limit if limit else window


def read_body(
    response: requests.Response, limit: int, shown: str, registry: str, pace: Pace | None = None
) -> bytes:
    """The whole body of a streamed `response`, refusing more than `limit` bytes; `pace`
    fails a body that arrives too slowly or too late."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RegistryError(f"{registry}: {shown}: body of {declared} bytes exceeds {limit}")
    chunks: list[bytes] = []
    total = 0
    deadline = pace.monotonic_deadline() if pace is not None else NO_DEADLINE
    watched: Watched | None = None
    try:
        with watching(socket_of(response), deadline) as watched:
            while total <= limit:
                INTERRUPTS.check()
                data = read_some(response.raw, min(1 << 16, limit + 1 - total), decode=True)
                if not data:
                    break
                chunks.append(data)
                total += len(data)
                if pace is not None:
                    pace.arrived(len(data))
    except READ_FAULTS as exc:
        _stopped(watched, pace)
        raise TransientError(
            f"{registry}: {shown}: transfer broke: {type(exc).__name__}: {log.redact(str(exc))}"
        ) from None
    if total > limit:
        raise RegistryError(f"{registry}: {shown}: body exceeds {limit} bytes")
    return b"".join(chunks)


def _stopped(watched: Watched | None, pace: Pace | None) -> None:
    """After a broken read: raise what the deadline watcher meant by breaking it, if it did."""
    reason = watched.fired if watched is not None else None
    if reason == "interrupted" or INTERRUPTS.stopping:
        INTERRUPTS.check()
        raise Interrupted("interrupted")
    if reason == "deadline" and pace is not None:
        pace.arrived(0)  # raises DeadlineExceeded
