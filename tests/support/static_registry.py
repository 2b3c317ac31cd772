"""A read-only registry on a loopback socket that serves exactly the bytes it is given.

For what a real registry refuses to store (schema 1, a body that is not JSON, a manifest whose
digest does not match the one asked for, a wrong Content-Type, JSON beyond ducc's size caps),
so that `ducc` can still be run as a subprocess against `http://127.0.0.1:<port>/...`.
`hits` counts requests per path: a test can bound what ducc asked for.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Reply:
    """One canned answer: `body` sent `repeat` times (a huge body costs the server no memory).
    Without `length` there is no Content-Length: the body ends when the connection closes.
    With `interval`, the body trickles: `chunk` bytes every `interval` seconds."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    length: bool = True
    repeat: int = 1
    chunk: int = 1
    interval: float = 0.0


def _digest(body: bytes, repeat: int) -> str:
    """sha256 of `body` sent `repeat` times, without that many bytes in memory."""
    hasher = hashlib.sha256()
    for _ in range(repeat):
        hasher.update(body)
    return f"sha256:{hasher.hexdigest()}"


def _error(code: str, status: int = 404) -> Reply:
    body = json.dumps({"errors": [{"code": code, "message": code.lower()}]}).encode()
    return Reply(body, {"Content-Type": "application/json"}, status)


class StaticRegistry:
    """Answers `/v2/`, and HEAD or GET of the manifests and blobs put into it."""

    def __init__(self) -> None:
        self.replies: dict[str, Reply] = {}
        self.hits: Counter[str] = Counter()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self._server is not None, "start() first"
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def manifest(
        self,
        repository: str,
        reference: str,
        raw: bytes,
        content_type: str,
        *,
        digest: str | None = "",
        length: bool = True,
        repeat: int = 1,
        extra: dict[str, str] | None = None,
    ) -> None:
        """Serve `raw` as the manifest `reference` and, as a registry does, under its own
        digest; `digest` is the Docker-Content-Digest header ("" for the body's own digest,
        None for no header); `extra` adds headers."""
        own = _digest(raw, repeat)
        headers = {"Content-Type": content_type, **(extra or {})}
        if digest is not None:
            headers["Docker-Content-Digest"] = digest or own
        reply = Reply(raw, headers, 200, length, repeat)
        for name in {reference, own}:
            self.replies[f"/v2/{repository}/manifests/{name}"] = reply

    def blob(
        self,
        repository: str,
        data: bytes,
        *,
        served: bytes | None = None,
        length: bool = True,
        repeat: int = 1,
        algorithm: str = "sha256",
        chunk: int = 1,
        interval: float = 0.0,
    ) -> str:
        """Serve `data` (or other bytes: `served`, `repeat` times) as the blob named by
        `data`'s digest (`algorithm`: sha256 or sha512); with `interval`, `chunk` bytes at a
        time."""
        digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
        body = data if served is None else served
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest}
        reply = Reply(body, headers, 200, length, repeat, chunk, interval)
        self.replies[f"/v2/{repository}/blobs/{digest}"] = reply
        return digest

    def redirect(self, path: str, location: str, status: int = 307) -> None:
        """Send requests for `path` to `location` (another path, or itself: a loop)."""
        self.replies[path] = Reply(b"", {"Location": location}, status)

    def reply(self, method: str, path: str) -> Reply:
        with self._lock:
            self.hits[f"{method} {path}"] += 1
        if path == "/v2/":
            return Reply(b"{}", {"Content-Type": "application/json"})
        found = self.replies.get(path)
        if found is not None:
            return found
        return _error("BLOB_UNKNOWN" if "/blobs/" in path else "MANIFEST_UNKNOWN")

    def start(self) -> StaticRegistry:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> StaticRegistry:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _ranged(reply: Reply, asked: str | None) -> Reply:
    """The part `Range: bytes=N-` asks for of a trickled blob (206), as registries answer."""
    match = re.fullmatch(r"bytes=(\d+)-", asked or "")
    if match is None or reply.status != 200 or reply.repeat != 1 or not reply.interval:
        return reply
    start, size = int(match.group(1)), len(reply.body)
    headers = {**reply.headers, "Content-Range": f"bytes {start}-{size - 1}/{size}"}
    return replace(reply, body=reply.body[start:], headers=headers, status=206)


def _handler_for(registry: StaticRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one request per connection, so a body without Content-Length ends at close.
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, *, send_body: bool) -> None:
            reply = _ranged(
                registry.reply(self.command, self.path.split("?", 1)[0]), self.headers.get("Range")
            )
            try:
                self.send_response(reply.status)
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                if reply.length:
                    self.send_header("Content-Length", str(len(reply.body) * reply.repeat))
                self.end_headers()
                for _ in range(reply.repeat if send_body else 0):
                    self._body(reply)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading (a body over its limit): that is the point

        def _body(self, reply: Reply) -> None:
            if not reply.interval:
                self.wfile.write(reply.body)
                return
            for start in range(0, len(reply.body), reply.chunk):
                if registry.stopping.wait(reply.interval):
                    return
                self.wfile.write(reply.body[start : start + reply.chunk])
                self.wfile.flush()

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
