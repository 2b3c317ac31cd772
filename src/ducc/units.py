"""Durations and byte sizes as operators write them (`90s`, `1h30m`; `512M`, `2G`), and
byte sizes for humans."""

from __future__ import annotations

import re

from ducc.errors import InputError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"(\d+)\s*([kmgtp]?)(?:i?b)?")
_BYTES = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_duration(text: str) -> float:
    """Seconds in `text`; a bare number means seconds. Raises `InputError` when malformed."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _SECONDS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise InputError(f"bad duration {text!r}: use e.g. 90s, 10m, 1h30m, 7d")
    return total


def parse_grace_period(text: str) -> float:
    """Seconds in a grace period: a bare number means days, as DUCC's `--grace-period 30`;
    `7d`, `12h`, `90m` as for any duration."""
    stripped = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", stripped):
        return float(stripped) * _SECONDS["d"]
    return parse_duration(stripped)


def parse_size(text: str) -> int:
    """Bytes in `text`: a whole number with an optional binary unit (`512M`, `2GiB`, `1t`).
    Raises `InputError` when malformed."""
    match = _SIZE.fullmatch(text.strip().lower())
    if match is None:
        raise InputError(f"bad size {text!r}: use bytes or e.g. 64M, 2G, 1T (powers of 1024)")
    return int(match.group(1)) * _BYTES[match.group(2)]


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop always returns
