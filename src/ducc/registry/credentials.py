"""Registry credentials from the ecosystem's usual places, looked up per registry.

Sources, first match wins: DUCC's variables (`DUCC_AUTH_REGISTRIES=a,b`, `DUCC_<a>_IDENT`,
`DUCC_<a>_USER`, `DUCC_<a>_PASS`; with `DUCC_<a>_PROXY` they are the proxy's),
`$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`,
`~/.config/containers/auth.json`, `~/.docker/config.json`. Within a file: the credential
helper `credHelpers` names for the registry, then `auths` (base64 `auth`, the most specific
key), then the `credsStore` helper. A password never appears in a repr, a log line or an
error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ducc import log
from ducc.errors import CredentialsInvalid
from ducc.oci.reference import DOCKER_HUB_ALIASES
from ducc.registry.helpers import Answer, CredentialHelper, HelperAnswers
from ducc.registry.proxies import parse_proxy

_DOCKER_HUB_KEY = "docker.io"
_DOCKER_HUB_SERVER = "https://index.docker.io/v1/"  # the address helpers know Docker Hub by
_MAX_AUTH_FILE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Credential:
    username: str
    password: str = field(repr=False)
    source: str = ""  # where it came from, for messages (never the secret itself)

    def __post_init__(self) -> None:
        # The forms that travel: the password, and `user:password` as a Basic header has it.
        log.hide(self.password, f"{self.username}:{self.password}")


@dataclass(frozen=True, slots=True)
class _Entry:
    key: str  # `host[:port]` or `host[:port]/namespace...`, or a DUCC substring ident
    source: str  # where it came from; entries of one source are consecutive
    credential: Credential | None = None
    helper: CredentialHelper | None = None  # asked at lookup time (`credHelpers`)
    substring: bool = False  # DUCC's IDENT matching: contained anywhere in `registry/repo`
    store: bool = False  # `credsStore`: the helper for every registry of its file

    def matches(self, registry: str, repository: str) -> bool:
        name = f"{registry}/{repository}"
        if self.substring:
            return self.key in name
        return name == self.key or name.startswith(self.key + "/")


@dataclass(frozen=True, slots=True)
class CredentialStore:
    """Every credential source found, in priority order."""

    entries: tuple[_Entry, ...] = ()
    answers: HelperAnswers = field(default_factory=HelperAnswers, compare=False)
    _made: dict[Answer, Credential] = field(default_factory=dict, compare=False)

    def lookup(self, registry: str, repository: str = "") -> Credential | None:
        """The credential for `registry` (as written in the reference) and `repository`:
        from the first source that has one."""
        name = _canonical(registry)
        for group in self._sources():
            found = self._from_source(group, name, repository)
            if found is not None:
                return found
        return None

    def _sources(self) -> list[list[_Entry]]:
        groups: list[list[_Entry]] = []
        for entry in self.entries:
            if groups and groups[-1][0].source == entry.source:
                groups[-1].append(entry)
            else:
                groups.append([entry])
        return groups

    def _from_source(self, entries: list[_Entry], name: str, repository: str) -> Credential | None:
        """The registry's own helper, then the most specific stored credential, then the
        file's default store."""
        for entry in entries:
            if entry.helper is not None and not entry.store and entry.key == name:
                found = self._ask(entry.helper, name)
                if found is not None:
                    return found
        stored = [e for e in entries if e.credential is not None and e.matches(name, repository)]
        if stored:
            return max(stored, key=lambda e: len(e.key)).credential
        for entry in entries:
            if entry.helper is not None and entry.store:
                return self._ask(entry.helper, name)
        return None

    def _ask(self, helper: CredentialHelper, name: str) -> Credential | None:
        server = _DOCKER_HUB_SERVER if name == _DOCKER_HUB_KEY else name
        answer = self.answers.get(helper, server)
        if answer is None:
            return None
        made = self._made.get(answer)  # one Credential per answer, not one per request
        if made is None:
            source = f"{helper.program} ({helper.named_in})"
            made = Credential(answer.username, answer.secret, source)
            self._made[answer] = made
        return made

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> CredentialStore:
        env = os.environ if environ is None else environ
        entries = list(_ducc_entries(env))
        for path in _auth_files(env):
            entries.extend(_auth_file_entries(path))
        return cls(tuple(entries))


def _canonical(registry: str) -> str:
    """Docker Hub's names all mean one registry; auth files spell it in several ways."""
    host = registry.lower()
    for prefix in ("https://", "http://"):
        host = host.removeprefix(prefix)
    host = host.split("/v1/", 1)[0].split("/v2/", 1)[0].rstrip("/")
    head, _, rest = host.partition("/")
    if head in DOCKER_HUB_ALIASES:
        return f"{_DOCKER_HUB_KEY}/{rest}" if rest else _DOCKER_HUB_KEY
    return host


def _ducc_entries(env: Mapping[str, str]) -> list[_Entry]:
    entries = []
    for name in filter(None, (n.strip() for n in env.get("DUCC_AUTH_REGISTRIES", "").split(","))):
        ident = env.get(f"DUCC_{name}_IDENT", "")
        user = env.get(f"DUCC_{name}_USER", "")
        password = env.get(f"DUCC_{name}_PASS", "")
        proxy = env.get(f"DUCC_{name}_PROXY", "").strip()
        if not ident or ((not user or not password) and not proxy):
            raise CredentialsInvalid(
                f"DUCC_AUTH_REGISTRIES names {name!r} but DUCC_{name}_IDENT, or DUCC_{name}_USER "
                f"and DUCC_{name}_PASS (or DUCC_{name}_PROXY), are missing or empty",
                hint=f"set them, or remove {name!r} from DUCC_AUTH_REGISTRIES",
            )
        if not user or not password:
            if user or password:
                log.get("credentials").warning("ducc_proxy_half_credentials", registry=name)
            continue  # a proxy asked anonymously, as DUCC asked it
        source = f"DUCC_{name}_USER/_PASS"
        credential = Credential(user, password, source)
        if proxy:  # requests for the registry go to the proxy: so do its credentials
            target = parse_proxy(name, ident, proxy)
            key = f"{target.host}/{target.path}" if target.path else target.host
            entries.append(_Entry(_canonical(key), source, credential))
        else:
            entries.append(_Entry(_canonical(ident), source, credential, substring=True))
    return entries


def _auth_files(env: Mapping[str, str]) -> list[Path]:
    """Candidate files in containers-auth.json(5) order, then Docker's."""
    home = Path(env.get("HOME", "~")).expanduser()
    paths = []
    if env.get("REGISTRY_AUTH_FILE"):
        paths.append(Path(env["REGISTRY_AUTH_FILE"]))
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    paths.append(config_home / "containers" / "auth.json")
    docker_dir = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else home / ".docker"
    paths.append(docker_dir / "config.json")
    return paths


def _auth_file_entries(path: Path) -> list[_Entry]:
    data = _read_auth_file(path)
    if data is None:
        return []
    source = str(path)
    entries = []
    helpers = data.get("credHelpers", {})
    if not isinstance(helpers, dict):
        raise CredentialsInvalid(f"{path}: 'credHelpers' must be an object")
    for key, value in helpers.items():
        helper = _helper(path, f"credHelpers[{key!r}]", value)
        entries.append(_Entry(_canonical(key), source, helper=helper))
    auths = data.get("auths", {})
    if not isinstance(auths, dict):
        raise CredentialsInvalid(f"{path}: 'auths' must be an object")
    for key, value in auths.items():
        credential = _decode_auth(path, key, value)
        if credential is not None:
            entries.append(_Entry(_canonical(key), source, credential))
    if data.get("credsStore"):
        helper = _helper(path, "credsStore", data["credsStore"])
        entries.append(_Entry("", source, helper=helper, store=True))
    return entries


def _helper(path: Path, where: str, name: object) -> CredentialHelper:
    """A helper's name: the `<name>` of `docker-credential-<name>`, never a path."""
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_." for c in name):
        raise CredentialsInvalid(
            f"{path}: {where} must name a credential helper (docker-credential-<name>)"
        )
    return CredentialHelper(name, path)


def _read_auth_file(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_AUTH_FILE + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.get("credentials").warning("auth_file_unreadable", path=str(path), error=exc.strerror)
        return None
    if len(raw) > _MAX_AUTH_FILE:
        raise CredentialsInvalid(f"{path}: larger than {_MAX_AUTH_FILE} bytes")
    try:
        data = json.loads(raw)
    except ValueError:
        raise CredentialsInvalid(f"{path}: not valid JSON") from None
    if not isinstance(data, dict):
        raise CredentialsInvalid(f"{path}: must be a JSON object")
    return data


def _decode_auth(path: Path, key: str, value: Any) -> Credential | None:
    """`{"auth": base64("user:password")}`; entries without `auth` (kept by a helper) are
    skipped."""
    encoded = value.get("auth") if isinstance(value, dict) else None
    if not encoded:
        return None
    try:
        text = base64.b64decode(str(encoded), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsInvalid(f"{path}: auths[{key!r}].auth is not base64 text") from None
    user, colon, password = text.partition(":")
    if not colon or not user:
        raise CredentialsInvalid(f"{path}: auths[{key!r}].auth is not 'user:password'")
    return Credential(user, password, str(path))
