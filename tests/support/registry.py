"""A real registry server for tests: Debian's `docker-registry` on a free 127.0.0.1 port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import requests

from tests.support.images import Pusher

REGISTRY_BINARY = "docker-registry"

_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: ducc-tests-only
"""


def available() -> bool:
    return shutil.which(REGISTRY_BINARY) is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalRegistry:
    """Start with `start()`, stop with `stop()`; `url` is `http://127.0.0.1:<port>`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def pusher(self) -> Pusher:
        return Pusher(self.url)

    def start(self, attempts: int = 5) -> LocalRegistry:
        for _ in range(attempts):
            self.port = free_port()
            config = self.workdir / "config.yml"
            storage = self.workdir / "storage"
            storage.mkdir(parents=True, exist_ok=True)
            config.write_text(_CONFIG.format(storage=storage, port=self.port))
            log = (self.workdir / "registry.log").open("ab")
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=log
            )
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"docker-registry did not start; see {self.workdir}/registry.log")

    def _wait_ready(self, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code == 200:
                    return True
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
