"""A registry faked with `responses`, for HTTP edge cases: auth schemes, errors, broken bodies.

`FakeRegistry` serves images built by `tests.support.images` at `https://<host>` and can ask
for Bearer (token realm on another host) or Basic auth, checking the header it receives.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from typing import Any, Literal

import requests
import responses

from tests.support.images import Image, Index, sha256

Auth = Literal["none", "bearer", "basic"]
Reply = tuple[int, dict[str, str], bytes | io.BufferedReader]
REALM_HOST = "auth.test"


class Broken(io.RawIOBase):
    """A body that delivers `data[:cut]` and then breaks like a reset connection."""

    def __init__(self, data: bytes, cut: int) -> None:
        self.data = data
        self.cut = cut
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.pos >= self.cut:
            raise ConnectionResetError("connection reset by peer")
        n = min(len(buffer), self.cut - self.pos, 4096, len(self.data) - self.pos)  # 0: the end
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


def broken_body(data: bytes, cut: int) -> io.BufferedReader:
    return io.BufferedReader(Broken(data, cut), buffer_size=1024)


def error_body(code: str, message: str = "") -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


class FakeRegistry:
    """Mocks for one registry host; `token_requests` counts token fetches."""

    def __init__(
        self,
        rsps: responses.RequestsMock,
        host: str = "registry.test",
        *,
        auth: Auth = "none",
        credentials: tuple[str, str] | None = None,
        issued: str = "tok-1",
        expires_in: int | None = 300,
    ) -> None:
        self.rsps = rsps
        self.host = host
        self.base = f"https://{host}"
        self.auth = auth
        self.credentials = credentials
        self.tokens = [issued]
        self.expires_in = expires_in
        self.token_requests: list[requests.PreparedRequest] = []
        self.refuse_credentials = False  # the token realm answers 401 to a Basic header
        self.challenge = (
            f'Bearer realm="https://{REALM_HOST}/token",service="{host}",'
            'scope="repository:placeholder:pull,push"'
            if auth == "bearer"
            else 'Basic realm="registry"'
        )
        rsps.add_callback("GET", f"{self.base}/v2/", callback=self._probe)
        if auth == "bearer":
            rsps.add_callback("GET", f"https://{REALM_HOST}/token", callback=self._token)

    # --- auth -------------------------------------------------------------------------------

    def _probe(self, request: requests.PreparedRequest) -> Reply:
        if self.auth == "none":
            return 200, {}, b"{}"
        return 401, {"WWW-Authenticate": self.challenge}, error_body("UNAUTHORIZED")

    def _token(self, request: requests.PreparedRequest) -> Reply:
        self.token_requests.append(request)
        if self.refuse_credentials and "Authorization" in request.headers:
            return 401, {}, error_body("UNAUTHORIZED", "bad credentials")
        token = self.tokens[min(len(self.token_requests), len(self.tokens)) - 1]
        body: dict[str, object] = {"token": token}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return 200, {}, json.dumps(body).encode()

    def authorized(self, request: requests.PreparedRequest) -> bool:
        header = request.headers.get("Authorization", "")
        if self.auth == "none":
            return True
        if self.auth == "basic":
            user, password = self.credentials or ("", "")
            return header == "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return header == f"Bearer {self.tokens[-1]}" or header in {
            f"Bearer {t}" for t in self.tokens
        }

    def guarded(self, reply: Callable[[requests.PreparedRequest], Reply]) -> Callable[..., Reply]:
        """Wrap `reply` so that unauthorized requests get 401 with the challenge."""

        def callback(request: requests.PreparedRequest) -> Reply:
            if not self.authorized(request):
                return 401, {"WWW-Authenticate": self.challenge}, error_body("UNAUTHORIZED")
            return reply(request)

        return callback

    # --- content ----------------------------------------------------------------------------

    def manifest(
        self,
        repository: str,
        reference: str,
        raw: bytes,
        media_type: str,
        *,
        digest_header: bool = True,
        method: str = "GET",
    ) -> None:
        headers = {"Content-Type": media_type}
        if digest_header:
            headers["Docker-Content-Digest"] = sha256(raw)
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        body = raw if method == "GET" else b""
        self.rsps.add_callback(method, url, callback=self.guarded(lambda _r: (200, headers, body)))

    def blob(self, repository: str, data: bytes, *, served: bytes | None = None) -> None:
        body = data if served is None else served
        url = f"{self.base}/v2/{repository}/blobs/{sha256(data)}"
        self.rsps.add_callback(
            "GET",
            url,
            callback=self.guarded(lambda _r: (200, {"Content-Length": str(len(body))}, body)),
        )

    def image(self, repository: str, tag: str | None, image: Image, *, head: bool = True) -> None:
        for layer in image.layers:
            self.blob(repository, layer.blob)
        self.blob(repository, image.config)
        for reference in filter(None, (tag, image.digest)):
            self.manifest(repository, reference, image.manifest, image.manifest_type)
            if head:
                self.manifest(
                    repository, reference, image.manifest, image.manifest_type, method="HEAD"
                )

    def index(self, repository: str, tag: str, index: Index) -> None:
        for image in index.images:
            self.image(repository, None, image)
        self.manifest(repository, tag, index.raw, index.media_type)
        self.manifest(repository, tag, index.raw, index.media_type, method="HEAD")

    def missing(self, repository: str, reference: str, code: str = "MANIFEST_UNKNOWN") -> None:
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        self.rsps.add_callback("HEAD", url, callback=self.guarded(lambda _r: (404, {}, b"")))
        self.rsps.add_callback(
            "GET", url, callback=self.guarded(lambda _r: (404, {}, error_body(code, "unknown")))
        )

    def tags(self, repository: str, pages: list[list[str]], *, absolute: bool = False) -> None:
        """Serve the tag list in `pages`, linked with `Link: <...>; rel="next"`."""
        url = f"{self.base}/v2/{repository}/tags/list"

        def reply(request: requests.PreparedRequest) -> Reply:
            query = (request.url or "").partition("?")[2]
            page = int(query.removeprefix("page=")) if query.startswith("page=") else 0
            headers = {}
            if page + 1 < len(pages):
                target = f"/v2/{repository}/tags/list?page={page + 1}"
                headers["Link"] = f'<{self.base + target if absolute else target}>; rel="next"'
            body = json.dumps({"name": repository, "tags": pages[page]}).encode()
            return 200, headers, body

        self.rsps.add_callback("GET", url, callback=self.guarded(reply))

    def calls(self, method: str | None = None, path: str | None = None) -> list[Any]:
        return [
            call
            for call in self.rsps.calls
            if (method is None or call.request.method == method)
            and (path is None or path in (call.request.url or ""))
        ]
