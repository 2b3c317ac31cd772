"""The `Authorization` header a registry wants: none, Basic, or a Bearer token per scope.

The registry's `/v2/` answer is probed once; a Bearer challenge names the token realm and
service, and tokens are fetched anonymously or with the registry's credential (HTTP Basic on
the token request, distribution token spec). A refused token is replaced once.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlencode, urlsplit

from ducc.errors import AuthError, RegistryError
from ducc.log import hide
from ducc.registry.auth import Challenge, TokenCache, TokenKey, parse_challenges
from ducc.registry.credentials import Credential, CredentialStore
from ducc.registry.faults import error_from_response, read_body
from ducc.registry.pace import NO_DEADLINE, Pace

if TYPE_CHECKING:
    import requests

MAX_TOKEN_BODY = 1024 * 1024
_NOT_PROBED = Challenge("not-probed")


class Exchange(Protocol):
    """What the authorizer asks of its registry client (`RegistryClient` is one): the host,
    one HTTP exchange outside the auth and retries, and the client's deadlines."""

    scheme: str
    api_host: str

    def absolute(self, target: str) -> str: ...

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        auth: Any = None,
        deadline: float | None = None,
    ) -> requests.Response: ...

    def deadline_from_now(self) -> float: ...

    def pace(self, what: str, deadline: float = NO_DEADLINE) -> Pace: ...


class Authorizer:
    """Per-registry auth state; thread-safe."""

    def __init__(
        self,
        client: Exchange,
        *,
        credentials: CredentialStore,
        tokens: TokenCache,
        log: Any,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._tokens = tokens
        self._log = log
        self._challenge: Challenge | None = _NOT_PROBED
        self._lock = threading.Lock()
        self._fetching = threading.Lock()  # one token request at a time, not one per thread

    def header(self, repository: str) -> str | None:
        """The `Authorization` value for a request about `repository`, or None."""
        challenge = self._probed()
        if challenge is None:
            return None
        credential = self._credential(repository)
        if challenge.scheme == "basic":
            return _basic(credential) if credential else None
        if challenge.scheme != "bearer":
            return None
        key = self._token_key(challenge, _pull_scope(repository), credential)
        cached = self._tokens.get(key)
        if cached:
            return f"Bearer {cached}"
        with self._fetching:
            cached = self._tokens.get(key)  # another thread may have fetched it meanwhile
            return f"Bearer {cached}" if cached else self._fetch_token(challenge, key, credential)

    def renew(self, repository: str, refused: str | None, challenge_header: str) -> str | None:
        """After a 401: a different `Authorization` worth one more try, or None."""
        challenges = parse_challenges(challenge_header)
        challenge = _preferred(challenges)
        credential = self._credential(repository)
        if challenge is None:
            return None
        with self._lock:
            self._challenge = challenge
        if challenge.scheme == "basic":
            fresh = _basic(credential) if credential else None
            return fresh if fresh != refused else None
        if challenge.scheme != "bearer":
            return None
        scope = challenge.get("scope") or _pull_scope(repository)
        key = self._token_key(challenge, scope, credential)
        if refused and refused.startswith("Bearer "):
            self._tokens.drop(key, refused.removeprefix("Bearer "))
        return self._fetch_token(challenge, key, credential)

    def _credential(self, repository: str) -> Credential | None:
        return self._credentials.lookup(self._client.api_host, repository)

    def _probed(self) -> Challenge | None:
        with self._lock:
            if self._challenge is not _NOT_PROBED:
                return self._challenge
            challenge = self._probe()
            self._challenge = challenge
            return challenge

    def _probe(self) -> Challenge | None:
        """`GET /v2/`: 200 means no auth; 401 names the scheme (distribution-spec end-1)."""
        url = self._client.absolute("/v2/")
        response = self._client.send("GET", url, {})
        try:
            if response.status_code == 401:
                challenge = _preferred(
                    parse_challenges(response.headers.get("WWW-Authenticate", ""))
                )
                self._log.debug("auth_probe", scheme=challenge.scheme if challenge else None)
                return challenge
            if response.ok:
                return None
            raise error_from_response(response, "GET", "/v2/", self._client.api_host)
        finally:
            response.close()

    def _token_key(
        self, challenge: Challenge, scope: str, credential: Credential | None
    ) -> TokenKey:
        return TokenKey(
            realm=challenge.get("realm") or "",
            service=challenge.get("service") or "",
            scope=scope,
            identity=credential.username if credential else "",
        )

    def _fetch_token(
        self, challenge: Challenge, key: TokenKey, credential: Credential | None
    ) -> str:
        realm = _checked_realm(key.realm, self._client.api_host)
        if credential and urlsplit(realm).scheme != "https" and self._client.scheme == "https":
            self._log.warning("token_realm_not_https", realm=realm)
            credential = None
        response = self._request_token(realm, key, credential)
        if response is None and credential is not None:
            self._log.warning("token_credentials_refused", source=credential.source)
            response = self._request_token(realm, key, None)
        if response is None:
            raise AuthError(
                f"{self._client.api_host}: the token service {realm} refused a token "
                f"for {key.scope or 'the registry'}",
                code="UNAUTHORIZED",
                status=401,
                hint="check the credentials for this registry",
            )
        token, expires_in = response
        hide(token)  # a registry may echo it in an error message
        self._tokens.put(key, token, expires_in)
        self._log.debug("token_fetched", scope=key.scope, expires_in=expires_in)
        return f"Bearer {token}"

    def _request_token(
        self, realm: str, key: TokenKey, credential: Credential | None
    ) -> tuple[str, float | None] | None:
        """(token, expires_in) from the realm; None when it refuses (401/403)."""
        params = [("service", key.service)] if key.service else []
        params += [("scope", scope) for scope in key.scope.split()]
        url = realm + ("&" if "?" in realm else "?") + urlencode(params) if params else realm
        auth = (credential.username, credential.password) if credential else None
        deadline = self._client.deadline_from_now()
        response = self._client.send("GET", url, {}, auth=auth, deadline=deadline)
        try:
            if response.status_code in (401, 403):
                return None
            if not response.ok:
                raise error_from_response(response, "GET", "token", self._client.api_host)
            pace = self._client.pace("GET token", deadline)
            body = read_body(response, MAX_TOKEN_BODY, "token", self._client.api_host, pace)
        finally:
            response.close()
        return _token_from_body(body, self._client.api_host)


def _token_from_body(body: bytes, registry: str) -> tuple[str, float | None]:
    try:
        data = json.loads(body)
    except ValueError:
        raise RegistryError(f"{registry}: the token service answered with invalid JSON") from None
    token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        raise RegistryError(f"{registry}: the token service answered without a token")
    expires_in = data.get("expires_in")
    valid = isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
    return token, float(expires_in) if valid else None


def _checked_realm(realm: str, registry: str) -> str:
    parts = urlsplit(realm)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise AuthError(f"{registry}: the auth challenge names no usable token realm ({realm!r})")
    return realm


def _preferred(challenges: list[Challenge]) -> Challenge | None:
    for scheme in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == scheme:
                return challenge
    return None


def _pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull" if repository else ""


def _basic(credential: Credential) -> str:
    pair = f"{credential.username}:{credential.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")
