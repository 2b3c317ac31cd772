"""Logging, configured once: structlog events to stderr, JSON off a terminal, readable on one.

Events are stable snake_case names with bound context (`image`, `digest`, `repo`). Secrets
never reach a log line: credentials in URLs are redacted, secret-named keys are masked, and
every password and token ducc holds (`hide`) is replaced wherever it appears, even when a
registry echoes it back without its `Basic`/`Bearer` scheme. structlog is imported at the
first event, not before: a command that logs nothing (`--version`, `check`) never pays for it.
"""

from __future__ import annotations

import base64
import logging
import re
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Literal, TextIO

LogFormat = Literal["auto", "json", "console"]

_SECRET_KEYS = frozenset(
    {"password", "passwd", "pass", "token", "access_token", "authorization", "auth", "secret"}
)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


_MIN_HIDDEN = 4  # shorter values would blank common words out of every message
_hidden: set[str] = set()
_hidden_lock = threading.Lock()


def hide(*secrets: str) -> None:
    """Have `redact` replace these values (and their base64 forms) wherever they appear."""
    forms = {form for secret in secrets for form in (secret, _b64(secret))}
    with _hidden_lock:
        _hidden.update(form for form in forms if len(form) >= _MIN_HIDDEN)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def redact(text: str) -> str:
    """Remove credentials from a URL or message: `https://u:p@h/x` -> `https://***@h/x`."""
    with _hidden_lock:
        hidden = sorted(_hidden, key=len, reverse=True)  # a longer form first: it may hold one
    for secret in hidden:
        text = text.replace(secret, "***")
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    return _BEARER.sub(lambda m: f"{m.group(1)} ***", text)


def _redact_event(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        if key.lower() in _SECRET_KEYS:
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact(value)
    return event


@dataclass(frozen=True, slots=True)
class _Settings:
    level: int
    json_lines: bool
    colors: bool
    out: TextIO


_pending: list[_Settings] = []  # configured before structlog was imported; applied then
_loading = threading.Lock()
_level = logging.NOTSET  # events below it are dropped without importing structlog
_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def configure(*, verbosity: int = 0, fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog and stdlib logging for the whole process (call once, at the entry).

    Until an event is logged, structlog is not imported: the settings wait for it."""
    out = stream if stream is not None else sys.stderr
    level = logging.WARNING - 10 * max(0, min(verbosity, 2))
    json_lines = fmt == "json" or (fmt == "auto" and not out.isatty())
    settings = _Settings(level, json_lines, out.isatty(), out)
    global _level  # noqa: PLW0603 - the process's one configuration
    _level = level
    with _loading:
        if "structlog" in sys.modules:
            _apply(sys.modules["structlog"], settings)
        else:
            _pending[:] = [settings]
    # Libraries (urllib3) log through stdlib logging; keep them quiet unless debugging.
    logging.basicConfig(level=logging.WARNING if verbosity < 2 else logging.DEBUG, stream=out)


def _apply(structlog: Any, settings: _Settings) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.json_lines
        else structlog.dev.ConsoleRenderer(colors=settings.colors)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_event,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(settings.level),
        # One write per line (print() makes two): library records from other threads, written
        # to the same stream by stdlib logging, can then never land inside an event's line.
        logger_factory=structlog.WriteLoggerFactory(file=settings.out),
        cache_logger_on_first_use=False,
    )


def _structlog() -> ModuleType:
    """structlog, imported (and configured as `configure` asked) at the first event."""
    if not _pending:
        import structlog  # noqa: PLC0415 - here, not at start-up

        return structlog
    with _loading:
        import structlog  # noqa: PLC0415 - here, not at start-up

        if _pending:
            _apply(structlog, _pending.pop())
    return structlog


class _Logger:
    """A logger whose events are rendered with the configuration in force when they are
    logged; it imports structlog only then."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def bind(self, **values: Any) -> _Logger:
        return _Logger({**self._values, **values})

    def __getattr__(self, method: str) -> Any:
        if _LEVELS.get(method, logging.CRITICAL) < _level:
            return _dropped  # as structlog's filtering logger would, without importing it
        return getattr(_structlog().get_logger(**self._values), method)


def _dropped(*_args: Any, **_kw: Any) -> None:
    return None


def get(name: str | None = None) -> Any:
    """The project's logger; `name` is bound as `logger_name` when given.

    The logger is a lazy proxy: modules create theirs at import time, and every call is
    rendered with the configuration in force then (`configure()` runs later, in the CLI).
    """
    return _Logger({"logger_name": name} if name else {})
