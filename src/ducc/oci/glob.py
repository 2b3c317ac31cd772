"""Shell-style globs, compiled strictly: `*`, `?`, `[set]`, `[!set]`, `\\x`; `.` is literal.

Used for wildcard tags (`21.2.1*`) and for `ignoreErrors` entries, where, as in DUCC's
`filepath.Match`, `*` and `?` do not cross a `/`. Malformed patterns raise `BadPattern`
instead of silently matching nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ducc.errors import BadPattern

_SPECIAL = frozenset("*?[")


def is_glob(text: str) -> bool:
    """True when `text` contains a wildcard character."""
    return any(ch in _SPECIAL for ch in text)


@dataclass(frozen=True, slots=True)
class Glob:
    pattern: str
    regex: re.Pattern[str]

    def matches(self, text: str) -> bool:
        return self.regex.fullmatch(text) is not None


def compile_glob(pattern: str, *, separator: str | None = None) -> Glob:
    """Compile `pattern`; with a `separator`, wildcards never match that character."""
    if not pattern:
        raise BadPattern("empty pattern")
    any_char = "." if separator is None else f"[^{re.escape(separator)}]"
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            parts.append(f"{any_char}*")
        elif ch == "?":
            parts.append(any_char)
        elif ch == "[":
            cls, i = _char_class(pattern, i, separator)
            parts.append(cls)
            continue
        elif ch == "\\":
            if i + 1 == len(pattern):
                raise BadPattern(f"pattern {pattern!r} ends with a lone backslash")
            i += 1
            parts.append(re.escape(pattern[i]))
        else:
            parts.append(re.escape(ch))
        i += 1
    return Glob(pattern, re.compile("".join(parts), re.DOTALL))


def _char_class(pattern: str, start: int, separator: str | None) -> tuple[str, int]:
    """Translate the `[...]` beginning at `start`; return the regex and the index after it."""
    i = start + 1
    negate = i < len(pattern) and pattern[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while i < len(pattern) and (pattern[i] != "]" or first):
        first = False
        lo = pattern[i]
        if lo == "\\" and i + 1 < len(pattern):
            i += 1
            lo = pattern[i]
        if i + 2 < len(pattern) and pattern[i + 1] == "-" and pattern[i + 2] != "]":
            hi = pattern[i + 2]
            if hi < lo:
                raise BadPattern(f"pattern {pattern!r}: bad range {lo}-{hi} in [...]")
            items.append(f"{re.escape(lo)}-{re.escape(hi)}")
            i += 3
        else:
            items.append(re.escape(lo))
            i += 1
    if i >= len(pattern):
        raise BadPattern(f"pattern {pattern!r}: '[' at position {start + 1} is never closed")
    if not items:
        raise BadPattern(f"pattern {pattern!r}: empty [] at position {start + 1}")
    body = "".join(items)
    if negate:
        extra = re.escape(separator) if separator else ""
        return f"[^{body}{extra}]", i + 1
    return f"[{body}]", i + 1
