"""Docker credential helpers: `docker-credential-<name> get`, named by `credHelpers` (one
registry) or `credsStore` (every registry) in `~/.docker/config.json` or an auth.json.

The protocol: the server address on standard input; on success a JSON object with
`Username` and `Secret` on standard output; for an unknown server an exit status other
than 0 and "credentials not found in native keychain". Answers are kept for a few minutes,
since a registry client asks for its credential on every request.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.errors import CredentialsInvalid

_TIMEOUT = 30.0
_KEEP = 300.0  # seconds an answer is reused (tokens from helpers live for hours)
_NOT_FOUND = "credentials not found"
_IDENTITY_TOKEN = "<token>"  # noqa: S105 (the marker helpers use, not a secret)
_MAX_ANSWER = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What a helper said for one server: a user and secret, or nothing stored."""

    username: str
    secret: str = field(repr=False)

    def __post_init__(self) -> None:
        log.hide(self.secret, f"{self.username}:{self.secret}")


@dataclass(frozen=True, slots=True)
class CredentialHelper:
    name: str  # the suffix of `docker-credential-<name>`
    named_in: Path  # the config file that names it, for messages

    @property
    def program(self) -> str:
        return f"docker-credential-{self.name}"

    def get(self, server: str) -> Answer | None:
        """The helper's credential for `server`, or None when it has none."""
        executable = shutil.which(self.program)
        if executable is None:
            raise CredentialsInvalid(
                f"{self.named_in}: credential helper {self.program} is not on PATH",
                hint=f"install {self.program}, or remove it from {self.named_in}",
            )
        try:
            done = subprocess.run(
                [executable, "get"],
                input=server.encode(),
                capture_output=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise CredentialsInvalid(
                f"{self.program} get {server}: no answer within {_TIMEOUT:.0f} s"
            ) from None
        if done.returncode != 0:
            said = _first_line(done.stdout) or _first_line(done.stderr)
            if _NOT_FOUND in said.lower():
                return None
            raise CredentialsInvalid(
                f"{self.program} get {server}: exit status {done.returncode}: "
                f"{said or 'no message'}"
            )
        return self._parse(server, done.stdout)

    def _parse(self, server: str, stdout: bytes) -> Answer | None:
        """The answer's fields; its text is never quoted in an error (it holds the secret)."""
        what = f"{self.program} get {server}"
        try:
            data = json.loads(stdout[:_MAX_ANSWER])
        except ValueError:
            raise CredentialsInvalid(f"{what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise CredentialsInvalid(f"{what}: the answer is not a JSON object")
        username, secret = data.get("Username"), data.get("Secret")
        if not isinstance(username, str) or not isinstance(secret, str):
            raise CredentialsInvalid(f"{what}: 'Username' and 'Secret' must be strings")
        if username == _IDENTITY_TOKEN:
            raise CredentialsInvalid(
                f"{what}: the helper holds an identity token, which ducc does not exchange",
                hint="store a user name and password or access token for this registry",
            )
        if not secret:
            return None
        return Answer(username, secret)


def _first_line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").strip()
    return text.splitlines()[0][:200] if text else ""


@dataclass(slots=True)
class HelperAnswers:
    """Answers by (helper, server), each kept for `keep` seconds."""

    keep: float = _KEEP
    clock: Callable[[], float] = time.monotonic
    _answers: dict[tuple[str, str], tuple[float, Answer | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, helper: CredentialHelper, server: str) -> Answer | None:
        key = (helper.name, server)
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and self.clock() - kept[0] < self.keep:
                return kept[1]
            answer = helper.get(server)
            self._answers[key] = (self.clock(), answer)
            return answer
