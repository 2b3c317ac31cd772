"""Helpers every command shares: warnings, registries, option callbacks (the registry client
is imported when a command opens the registries, not when it is defined)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from ducc.errors import InputError
from ducc.oci.platform import Platform, parse_platform
from ducc.registry.settings import RegistrySettings

if TYPE_CHECKING:
    from ducc.registry.client import Registries

_SECONDS = "a number of seconds > 0"
_DELAY = "a number of seconds >= 0"
_ATTEMPTS = "a whole number >= 1"
_RATE = "a number of bytes per second >= 0 (0: no minimum)"
# Variable -> (RegistrySettings field, what it must be); for operators and fast tests.
REGISTRY_ENVIRONMENT = {
    "DUCC_REGISTRY_CONNECT_TIMEOUT": ("connect_timeout", _SECONDS),
    "DUCC_REGISTRY_READ_TIMEOUT": ("read_timeout", _SECONDS),
    "DUCC_REGISTRY_DEADLINE": ("deadline", _SECONDS),
    "DUCC_REGISTRY_MIN_RATE": ("min_rate", _RATE),
    "DUCC_REGISTRY_RATE_WINDOW": ("rate_window", _SECONDS),
    "DUCC_REGISTRY_RETRIES": ("retry_attempts", _ATTEMPTS),
    "DUCC_REGISTRY_BACKOFF": ("backoff_initial", _DELAY),
    "DUCC_REGISTRY_BACKOFF_CAP": ("backoff_cap", _DELAY),
    "DUCC_REGISTRY_MAX_WAIT": ("max_wait", _DELAY),
}


def warn(lines: list[str]) -> None:
    for line in lines:
        click.echo(f"warning: {line}", err=True)


def registry_settings(environ: Mapping[str, str]) -> RegistrySettings:
    """The defaults, overridden by the `DUCC_REGISTRY_*` variables set in `environ`."""
    values: dict[str, Any] = {}
    problems = []
    for name, (attribute, expected) in REGISTRY_ENVIRONMENT.items():
        text = environ.get(name, "").strip()
        if not text:
            continue
        value = _number(text, expected)
        if value is None:
            problems.append(f"{name}={text!r}: expected {expected}")
        else:
            values[attribute] = value
    if problems:
        raise InputError("; ".join(problems), hint="fix or unset the variables named")
    return replace(RegistrySettings(), **values)


def _number(text: str, expected: str) -> float | int | None:
    """`text` as `expected` describes it, or None."""
    try:
        value = int(text) if expected == _ATTEMPTS else float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    if expected in (_DELAY, _RATE) or value > 0:
        return value
    return None


def open_registries() -> Registries:
    from ducc.registry.client import Registries
    from ducc.registry.credentials import CredentialStore
    from ducc.registry.proxies import proxies_from_environment

    return Registries(
        registry_settings(os.environ),
        credentials=CredentialStore.from_environment(),
        proxies=proxies_from_environment(os.environ),
    )


def platform_option(
    _ctx: click.Context, _param: click.Parameter, value: str | None
) -> Platform | None:
    return parse_platform(value) if value else None
