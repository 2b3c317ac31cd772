"""A registry front on 127.0.0.1 that demands credentials, in front of the real local registry.

`AuthRegistry` answers `/v2/...` itself when a request lacks the right `Authorization`
(401 with a Basic or a Bearer challenge whose token realm is its own `/token`), and otherwise
forwards the request to the registry behind it. Faults are switched per test: a token service
that fails, 403 DENIED with the received header echoed in the error body (as careless servers
do), blob downloads redirected to another origin. Every request is recorded with the
`Authorization` it carried, so a test can tell whether credentials were sent.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import requests

Mode = Literal["none", "basic", "bearer"]
_FORWARDED = ("Content-Type", "Docker-Content-Digest", "Link", "Location")


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str


@dataclass
class Faults:
    token_status: int | None = None  # the token service answers this status instead
    token_body: bytes | None = None  # ... or this body with 200
    deny: Literal["", "header", "bare"] = ""  # 403 DENIED to an authorized request, echoing
    # its `Authorization` header, or the bare credential in it
    redirect_blobs_to: str | None = None  # base URL blob GETs are redirected to (307)


class AuthRegistry:
    """`with AuthRegistry(upstream, mode="bearer", user=..., password=..., token=...) as r:`"""

    def __init__(
        self,
        upstream: str,
        *,
        mode: Mode,
        user: str = "",
        password: str = "",
        token: str = "",
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = mode
        self.user = user
        self.password = password
        self.token = token
        self.faults = Faults()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.session = requests.Session()  # to the registry behind
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def basic(self) -> str:
        pair = f"{self.user}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()

    def authorized(self, header: str) -> bool:
        if self.mode == "none":
            return True
        if self.mode == "basic":
            return header == self.basic()
        return header == f"Bearer {self.token}"

    def challenge(self, repository: str) -> str:
        if self.mode == "basic":
            return 'Basic realm="ducc-tests"'
        return (
            f'Bearer realm="{self.url}/token",service="ducc-tests",'
            f'scope="repository:{repository}:pull"'
        )

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

    def start(self) -> AuthRegistry:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> AuthRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def _handler(registry: AuthRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_HEAD(self) -> None:
            self._serve()

        def _serve(self) -> None:
            header = self.headers.get("Authorization", "")
            registry.record(Seen(self.command, self.path, header))
            if self.path.startswith("/token"):
                self._token(header)
                return
            repository = self.path.removeprefix("/v2/").split("/manifests/")[0]
            repository = repository.split("/blobs/")[0].split("/tags/")[0]
            if not registry.authorized(header):
                challenge = {"WWW-Authenticate": registry.challenge(repository)}
                self._reply(401, _error("UNAUTHORIZED", "authentication required"), challenge)
            elif registry.faults.deny and self.path != "/v2/":
                echoed = header if registry.faults.deny == "header" else header.split()[-1]
                self._reply(403, _error("DENIED", f"no pull access for {echoed}"))
            elif registry.faults.redirect_blobs_to and "/blobs/" in self.path:
                target = registry.faults.redirect_blobs_to.rstrip("/") + self.path
                self._reply(307, b"", {"Location": target})
            else:
                self._forward()

        def _token(self, header: str) -> None:
            faults = registry.faults
            if faults.token_status is not None:
                self._reply(faults.token_status, _error("UNAVAILABLE", "token service down"))
            elif header != registry.basic():
                self._reply(401, _error("UNAUTHORIZED", "bad credentials"))
            elif faults.token_body is not None:
                self._reply(200, faults.token_body, {"Content-Type": "application/json"})
            else:
                body = json.dumps({"token": registry.token, "expires_in": 300}).encode()
                self._reply(200, body, {"Content-Type": "application/json"})

        def _forward(self) -> None:
            accept = {"Accept": self.headers.get("Accept", "*/*")}
            upstream = registry.session.request(
                self.command,
                registry.upstream + self.path,
                headers=accept,
                allow_redirects=True,
                timeout=30,
            )
            headers = {k: upstream.headers[k] for k in _FORWARDED if k in upstream.headers}
            length = upstream.headers.get("Content-Length") if self.command == "HEAD" else None
            self._reply(upstream.status_code, upstream.content, headers, length)

        def _reply(
            self,
            status: int,
            body: bytes,
            headers: dict[str, str] | None = None,
            length: str | None = None,
        ) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", length or str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

    return Handler
