"""`ducc loop` under signals as a service manager sends them: a storm of SIGHUPs while an
image converts does not kill it, and SIGTERM ends it within seconds in every phase, even
while a registry never answers or a retry is backing off."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.ducc import unique, write_recipe
from tests.support.images import directory, file, make_image, make_layer
from tests.support.registry import LocalRegistry
from tests.support.stall_server import Stall, StallServer

pytestmark = pytest.mark.integration

# What systemd allows by default before it kills (TimeoutStopSec=90 s) is far above this.
STOP_WITHIN = 10.0


class Loop:
    def __init__(self, proc: subprocess.Popen[str], root: Path, log: Path) -> None:
        self.proc, self.root, self.log = proc, root, log

    def events(self, name: str) -> list[dict[str, object]]:
        lines = self.log.read_text().splitlines()
        found = [json.loads(line) for line in lines if line.startswith("{")]
        return [e for e in found if e.get("event") == name]

    def wait_for(self, check: Callable[[], bool], timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if check():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"ducc loop exited ({self.proc.returncode}):\n{self.log.read_text()}")
            time.sleep(0.05)
        pytest.fail(f"not reached within {timeout} s:\n{self.log.read_text()}")

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took to exit)."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code, time.monotonic() - sent


@pytest.fixture
def start_loop(tmp_path: Path) -> Iterator[Callable[..., Loop]]:
    loops: list[Loop] = []

    def start(images: list[str], *extra: str, env: dict[str, str] | None = None) -> Loop:
        recipe = write_recipe(tmp_path / "r.yaml", "local.test", images)
        root, log = tmp_path / "repo", tmp_path / "loop.log"
        argv = [sys.executable, "-m", "ducc", "--log-format", "json", "-v", "loop", str(recipe)]
        argv += ["--publisher", "dir", "--root", str(root), "--state-dir", str(tmp_path / "s")]
        proc = subprocess.Popen(
            [*argv, "--interval", "1h", *extra],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env={**os.environ, **(env or {})},
            text=True,
        )
        loops.append(Loop(proc, root, log))
        return loops[-1]

    yield start
    for loop in loops:
        if loop.proc.poll() is None:
            loop.proc.kill()
            loop.proc.wait()


def test_a_storm_of_sighups_during_a_conversion_is_one_reload(
    registry: LocalRegistry, start_loop: Callable[..., Loop]
) -> None:
    name = unique("hup")
    data = os.urandom(16 * 1024 * 1024)  # a conversion of a few seconds to storm through
    layer = make_layer([directory("data"), file("data/blob", data), file("etc/app", "hup")])
    registry.pusher().image(f"{name}/app", "1", make_image([layer], cmd=["/bin/true"]))
    image = f"{registry.url}/{name}/app:1"
    loop = start_loop([image])
    loop.wait_for(lambda: bool(loop.events("blob_download")))  # the conversion is under way
    for _ in range(3):
        for _ in range(1000):
            loop.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
    public = loop.root / image.split("://", 1)[1] / "etc" / "app"
    loop.wait_for(public.is_file)
    loop.wait_for(lambda: bool(loop.events("recipe_reloaded")))
    assert loop.proc.poll() is None  # alive after 3,000 SIGHUPs
    assert len(loop.events("recipe_reloaded")) <= 3  # coalesced: not one reload per signal
    code, _ = loop.terminate()
    assert code == 0
    assert "stopped cleanly" in loop.log.read_text()


def test_sigterm_during_a_retry_backoff_ends_the_loop_within_seconds(
    start_loop: Callable[..., Loop],
) -> None:
    env = {"DUCC_REGISTRY_READ_TIMEOUT": "0.5", "DUCC_REGISTRY_BACKOFF": "60"}
    with StallServer(Stall.SILENT, stall_probe=True) as server:
        loop = start_loop([f"{server.url}/stall/a:1", f"{server.url}/stall/b:1"], env=env)
        loop.wait_for(lambda: bool(loop.events("registry_retry")))  # backing off a minute
        code, took = loop.terminate()
    assert code == 0
    assert took < STOP_WITHIN
    assert "stopped cleanly" in loop.log.read_text()


def test_sigterm_while_a_registry_never_answers_ends_the_loop_within_seconds(
    start_loop: Callable[..., Loop],
) -> None:
    # The defaults: a read waits 60 s for a byte; the requests are blocked in recv().
    with StallServer(Stall.SILENT) as server:
        loop = start_loop([f"{server.url}/stall/a:1", f"{server.url}/stall/b:1"])
        loop.wait_for(lambda: sum(server.requests.values()) >= 3)  # /v2/ and both HEADs
        code, took = loop.terminate()
    assert code == 0
    assert took < STOP_WITHIN
