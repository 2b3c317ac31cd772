"""A registry on 127.0.0.1 that stalls: it never answers, sends its headers one line at a
time, or trickles its body a byte at a time.

`/v2/` is answered at once (unless `stall_probe`), so ducc gets as far as the manifest; a
HEAD of a manifest gets complete headers with a made-up digest (so a poll says "new") unless
the behaviour is to stall every request. Every request is counted; `stop()` ends every
stalled connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import Counter
from enum import StrEnum
from types import TracebackType

MADE_UP_DIGEST = "sha256:" + "5a" * 32


class Stall(StrEnum):
    SILENT = "silent"  # accept, read the request, never answer
    SLOW_HEADERS = "slow-headers"  # a status line, then one header line every `pace` s
    TRICKLE = "trickle"  # complete headers, then one body byte every `pace` s


class StallServer:
    def __init__(self, stall: Stall, *, pace: float = 1.0, stall_probe: bool = False) -> None:
        self.stall = stall
        self.pace = pace
        self.stall_probe = stall_probe
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None
        self.port = 0
        self._connections: list[socket.socket] = []

    @property
    def host(self) -> str:
        assert self._sock is not None, "start() first"
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> StallServer:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            self._sock.close()
        with self._lock:
            for conn in self._connections:
                _close(conn)

    def __enter__(self) -> StallServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            method, path = _read_request(conn)
            with self._lock:
                self.requests[f"{method} {path}"] += 1
            if path == "/v2/" and not self.stall_probe:
                conn.sendall(_answer(200, b"{}", {"Content-Type": "application/json"}))
            elif method == "HEAD" and self.stall is Stall.TRICKLE:
                conn.sendall(_answer(200, b"", _manifest_headers(), head=True))
            else:
                self._stall(conn)
        except OSError:
            pass
        finally:
            _close(conn)

    def _stall(self, conn: socket.socket) -> None:
        if self.stall is Stall.SILENT:
            self._stopping.wait()
            return
        if self.stall is Stall.SLOW_HEADERS:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for n in range(1_000_000):
                if self._stopping.wait(self.pace):
                    return
                conn.sendall(f"X-Slow-{n}: {n}\r\n".encode())
            return
        headers = {**_manifest_headers(), "Content-Length": "1000000"}
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + _header_lines(headers) + b"\r\n")
        while not self._stopping.wait(self.pace):
            conn.sendall(b" ")


def _manifest_headers() -> dict[str, str]:
    return {
        "Content-Type": "application/vnd.oci.image.manifest.v1+json",
        "Docker-Content-Digest": MADE_UP_DIGEST,
    }


def _read_request(conn: socket.socket) -> tuple[str, str]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("the client left")
        data += chunk
    method, target, _ = data.split(b"\r\n", 1)[0].decode().split(" ", 2)
    return method, target.split("?", 1)[0]


def _header_lines(headers: dict[str, str]) -> bytes:
    return b"".join(f"{key}: {value}\r\n".encode() for key, value in headers.items())


def _answer(status: int, body: bytes, headers: dict[str, str], *, head: bool = False) -> bytes:
    headers = {"Connection": "close", **headers}
    if not head:
        headers["Content-Length"] = str(len(body))
    start = f"HTTP/1.1 {status} OK\r\n".encode() + _header_lines(headers) + b"\r\n"
    return start + (b"" if head else body)


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    conn.close()
