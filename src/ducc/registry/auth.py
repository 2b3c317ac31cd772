"""Registry authentication: `WWW-Authenticate` challenges (RFC 7235) and the token cache.

The parser handles quoted commas (`scope="repository:a:pull,push"`) and several challenges in
one header. Tokens are cached per (realm, service, scope, identity) until `expires_in` (default
60 s, distribution token spec) runs out, minus a margin so a token never dies mid-request.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_SCHEME = re.compile(rf"\s*({_TCHARS})")
# Unquoted values should be tokens; some servers send bare URLs, so take anything up to a comma.
_PARAM = re.compile(rf'\s*({_TCHARS})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]+))')
_TOKEN68 = re.compile(r"\s*([A-Za-z0-9._~+/-]+=*)\s*(?=,|$)")
DEFAULT_EXPIRES_IN = 60.0
EXPIRY_MARGIN = 0.2  # refresh after 80 % of the lifetime, as DUCC does


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # lowercase: "bearer", "basic"
    params: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        return dict(self.params).get(name.lower())


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a `WWW-Authenticate` value; malformed tails are ignored."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        match = _SCHEME.match(header, pos)
        if not match:
            break
        scheme = match.group(1).lower()
        params, pos = _parse_params(header, match.end())
        challenges.append(Challenge(scheme, tuple(params)))
    return challenges


def _parse_params(header: str, pos: int) -> tuple[list[tuple[str, str]], int]:
    """auth-params after a scheme, up to the next scheme; returns them and the new position."""
    params: list[tuple[str, str]] = []
    token68 = _TOKEN68.match(header, pos)
    if token68:  # `abc==` up to a comma; an auth-param always has a value after `=`
        return [("token68", token68.group(1))], token68.end()
    while True:
        match = _PARAM.match(header, pos)
        if not match:
            return params, pos
        quoted, plain = match.group(2), match.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else plain
        params.append((match.group(1).lower(), value))
        pos = match.end()
        comma = re.compile(r"\s*,").match(header, pos)
        if not comma:
            return params, pos
        pos = comma.end()


@dataclass(frozen=True, slots=True)
class TokenKey:
    realm: str
    service: str
    scope: str
    identity: str  # the username, or "" when anonymous


class TokenCache:
    """Thread-safe cache of bearer tokens; `clock` is injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[TokenKey, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: TokenKey) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
            if found is None:
                return None
            token, expires_at = found
            if self._clock() >= expires_at:
                del self._tokens[key]
                return None
            return token

    def put(self, key: TokenKey, token: str, expires_in: float | None) -> None:
        lifetime = expires_in if expires_in and expires_in > 0 else DEFAULT_EXPIRES_IN
        with self._lock:
            self._tokens[key] = (token, self._clock() + lifetime * (1 - EXPIRY_MARGIN))

    def drop(self, key: TokenKey, token: str) -> None:
        """Forget `token` (the registry refused it), unless another thread already replaced it."""
        with self._lock:
            found = self._tokens.get(key)
            if found is not None and found[0] == token:
                del self._tokens[key]
