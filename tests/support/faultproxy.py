"""A fault-injecting reverse proxy on 127.0.0.1 in front of a real registry.

Rules select requests (method and a regex searched in the path) and spoil the first `times`
matching ones (or every one): error statuses, resets and truncations mid-body, flipped bytes,
wrong `Content-Length`, stalls, a different manifest. Every request is recorded, so tests can
bound how many reached the registry.
"""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

# Headers that belong to one connection, not to the answer (RFC 9110 7.6.1), or that the
# proxy sets itself.
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host"}
)
_SKIP_ANSWER = _HOP_BY_HOP | {"content-length", "date", "server"}


class Fault(StrEnum):
    STATUS = "status"  # answer `status` (with `Retry-After` when set), never forward
    DROP = "drop"  # no answer at all: a TCP reset before any header
    RESET = "reset"  # headers and `keep` body bytes, then a TCP reset
    TRUNCATE = "truncate"  # full Content-Length, `keep` body bytes, then a clean close
    FLIP = "flip"  # the whole body with one byte inverted (same length)
    LONG_LENGTH = "long-length"  # Content-Length `keep` more than the body, then close
    SHORT_LENGTH = "short-length"  # Content-Length `keep` less than the body, then close
    STALL = "stall"  # headers and `keep` body bytes, then silence for `stall` seconds
    REPLACE = "replace"  # `body` (with its own digest header) instead of the real answer
    BEFORE = "before"  # call `before()`, then forward untouched (a tag re-pushed meanwhile)


@dataclass
class Rule:
    fault: Fault
    method: str = "GET"
    path: str = ""  # regex searched in the request path
    times: int | None = 1  # matching requests spoiled; None: every one
    status: int = 503
    retry_after: int | None = None
    keep: int = 0
    stall: float = 0.0
    body: bytes = b""
    media_type: str = ""
    before: Callable[[], None] | None = None
    fired: int = 0

    def takes(self, method: str, path: str) -> bool:
        if self.method != method or not re.search(self.path, path):
            return False
        return self.times is None or self.fired < self.times


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it, and what it answered."""

    method: str
    path: str
    kind: str  # base, manifest, blob, tags or other
    range: str | None
    status: int  # 0: none (dropped)
    fault: Fault | None
    at: float  # time.monotonic() when it arrived


def kind_of(path: str) -> str:
    if path.rstrip("/") == "/v2":
        return "base"
    for kind in ("manifest", "blob"):
        if re.search(rf"^/v2/.+/{kind}s/", path):
            return kind
    return "tags" if path.endswith("/tags/list") else "other"


@dataclass
class _State:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    session: requests.Session = field(default_factory=requests.Session)


class FaultProxy:
    """`start()`, then point images at `host`; `add()` rules; `stop()` at the end."""

    def __init__(self, upstream: str) -> None:
        self._state = _State(upstream.rstrip("/"))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> FaultProxy:
        state = self._state

        class Handler(_Handler):
            shared = state

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._state.session.close()

    def add(self, *rules: Rule) -> None:
        with self._state.lock:
            self._state.rules.extend(rules)

    def clear(self) -> None:
        """Forget the rules and the requests seen (a clean run follows)."""
        with self._state.lock:
            self._state.rules.clear()
            self._state.seen.clear()

    @property
    def seen(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.seen)

    def count(self, kind: str | None = None, method: str | None = None, path: str = "") -> int:
        """Requests of `kind` and `method` (any when None) whose path matches `path`."""
        return sum(
            1
            for s in self.seen
            if (kind is None or s.kind == kind)
            and (method is None or s.method == method)
            and re.search(path, s.path)
        )

    def faults_fired(self) -> int:
        return sum(1 for s in self.seen if s.fault is not None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client dropping its connection is normal here; anything else is a proxy bug."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    shared: _State

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        arrived = time.monotonic()
        path = self.path.split("?", 1)[0]
        rule = self._take_rule(method, path)

        def note(status: int) -> None:  # before any body: a stall must already count
            fault = rule.fault if rule else None
            record = Seen(
                method, path, kind_of(path), self.headers.get("Range"), status, fault, arrived
            )
            with self.shared.lock:
                self.shared.seen.append(record)

        if rule is not None and rule.fault is Fault.BEFORE and rule.before is not None:
            rule.before()
        if rule is not None and rule.fault is Fault.STATUS:
            note(rule.status)
            self._status(rule)
            return
        if rule is not None and rule.fault is Fault.DROP:
            note(0)
            self._reset()
            return
        status, headers, body = self._forward(method)
        if rule is not None and rule.fault is Fault.REPLACE:
            status, headers, body = 200, _replaced(headers, rule), rule.body
        note(status)
        self._answer(method, status, headers, body, rule)

    def _take_rule(self, method: str, path: str) -> Rule | None:
        with self.shared.lock:
            for rule in self.shared.rules:
                if rule.takes(method, path):
                    rule.fired += 1
                    return rule
        return None

    def _forward(self, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = self.shared.session.request(
            method,
            self.shared.upstream + self.path,
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=30,
        )
        kept = [(k, v) for k, v in upstream.headers.items() if k.lower() not in _SKIP_ANSWER]
        if method == "HEAD":
            kept.append(("Content-Length", upstream.headers.get("Content-Length", "0")))
        return upstream.status_code, kept, upstream.content

    def _status(self, rule: Rule) -> None:
        body = (
            b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            if rule.status != 429
            else b'{"errors":[{"code":"TOOMANYREQUESTS","message":"injected fault"}]}'
        )
        self.send_response(rule.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if rule.retry_after is not None:
            self.send_header("Retry-After", str(rule.retry_after))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _answer(
        self,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        rule: Rule | None,
    ) -> None:
        fault = rule.fault if rule is not None else None
        declared = len(body)
        if rule is not None and fault is Fault.LONG_LENGTH:
            declared += rule.keep
        elif rule is not None and fault is Fault.SHORT_LENGTH:
            declared -= rule.keep
        if fault is Fault.FLIP and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if method != "HEAD":
            self.send_header("Content-Length", str(declared))
        self.end_headers()
        if method == "HEAD":
            return
        if rule is None or fault in (Fault.FLIP, Fault.REPLACE, Fault.BEFORE):
            self.wfile.write(body)
        else:
            self._spoil(rule, body)

    def _spoil(self, rule: Rule, body: bytes) -> None:
        """Send part of `body` (or all of it, for a wrong length) and end the connection."""
        whole = rule.fault in (Fault.LONG_LENGTH, Fault.SHORT_LENGTH)
        self.wfile.write(body if whole else body[: rule.keep])
        self.wfile.flush()
        self.close_connection = True
        if rule.fault is Fault.STALL:
            self.shared.stopping.wait(rule.stall)
        if rule.fault is Fault.RESET:
            self._reset()

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST instead of FIN (the peer sees ECONNRESET).
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()


def _replaced(headers: list[tuple[str, str]], rule: Rule) -> list[tuple[str, str]]:
    """The upstream headers with the replacement body's type and digest."""
    kept = [
        (k, v) for k, v in headers if k.lower() not in ("content-type", "docker-content-digest")
    ]
    digest = "sha256:" + hashlib.sha256(rule.body).hexdigest()
    return [*kept, ("Content-Type", rule.media_type), ("Docker-Content-Digest", digest)]
