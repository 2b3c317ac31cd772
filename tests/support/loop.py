"""A `ducc loop` process as a service manager runs it: JSON events in a log file, waits on
its effects, SIGTERM with the time it took to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class Loop:
    proc: subprocess.Popen[str]
    root: Path
    log: Path

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

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and the log."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return self.proc.returncode, self.log.read_text()

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


@dataclass
class Loops:
    """`ducc loop` processes publishing with the directory publisher under `work`."""

    work: Path
    started: list[Loop] = field(default_factory=list)

    def start(self, recipe: Path, *extra: str, env: dict[str, str] | None = None) -> Loop:
        root = self.work / "repo"
        log = self.work / f"loop{len(self.started)}.log"
        argv = [sys.executable, "-m", "ducc", "--log-format", "json", "-v", "loop", str(recipe)]
        argv += ["--publisher", "dir", "--root", str(root), "--state-dir", str(self.work / "s")]
        proc = subprocess.Popen(
            [*argv, *extra],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
            env={**os.environ, **(env or {})},
            text=True,
        )
        self.started.append(Loop(proc, root, log))
        return self.started[-1]

    def kill_all(self) -> None:
        for loop in self.started:
            if loop.proc.poll() is None:
                loop.proc.kill()
                loop.proc.wait()
