"""Many short `ducc` commands, each in a process of its own, without paying Python's start-up
for every one: a server process imports every command once and forks one child per command.

The child runs `ducc.cli.main.main(argv)` (what `python -m ducc` runs) with its own working
directory, environment additions, stdin from /dev/null and stdout/stderr captured to files;
its exit status is the command's. The server holds no threads, so forking it is safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests.support.ducc import Run

_REPO = Path(__file__).resolve().parents[2]


class Zygote:
    """`with Zygote(tmp_path) as z: z.run("check", path, cwd=...)`; safe to call from threads
    (one command at a time: the catalogue's commands take milliseconds once forked). Captured
    output is kept in `workdir` while a command runs."""

    def __init__(self, workdir: Path) -> None:
        self._lock = threading.Lock()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_REPO), *sys.path])}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from tests.support.zygote import serve; serve()",
                os.fspath(workdir),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )

    def run(
        self,
        *args: str | os.PathLike[str],
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> tuple[Run, float]:
        """The command's outcome and its wall time in seconds (fork to exit)."""
        request = {
            "argv": [os.fspath(a) for a in args],
            "cwd": os.fspath(cwd) if cwd else None,
            "env": dict(env or {}),
            "timeout": timeout,
        }
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        with self._lock:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
            line = stdout.readline()
        if not line:
            raise RuntimeError("the zygote process died")
        reply = json.loads(line)
        return Run(reply["code"], reply["stdout"], reply["stderr"]), reply["seconds"]

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def serve() -> None:
    """The server loop: one JSON request per line on stdin, one JSON reply per line;
    `sys.argv[1]` is the directory for captured output."""
    from ducc.cli.group import load_commands

    load_commands()  # every command's module imported once, before any fork

    channel = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # nothing but replies may reach the channel
    for line in sys.stdin:
        reply = _one(json.loads(line), Path(sys.argv[1]))
        channel.write(json.dumps(reply) + "\n")
        channel.flush()


def _one(request: dict[str, Any], workdir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="zygote-", dir=workdir) as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        sys.stdout.flush()
        sys.stderr.flush()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request, out_path, err_path)
        code = _wait(pid, started + float(request["timeout"]))
        seconds = time.monotonic() - started
        return {
            "code": code,
            "stdout": out_path.read_text(errors="replace"),
            "stderr": err_path.read_text(errors="replace"),
            "seconds": seconds,
        }


def _child(request: dict[str, Any], out_path: Path, err_path: Path) -> None:
    code = 1
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(target, fd)
        if request["cwd"]:
            os.chdir(request["cwd"])
        os.environ.update(request["env"])
        sys.argv = ["ducc", *request["argv"]]
        from ducc.cli.main import main  # already imported by the server

        main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # reported as Python's own start-up would
        traceback.print_exc()
    finally:
        _flush(sys.stdout)
        _flush(sys.stderr)
        os._exit(code)


def _flush(stream: IO[str]) -> None:
    with contextlib.suppress(OSError):
        stream.flush()


def _wait(pid: int, deadline: float) -> int:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL
        time.sleep(0.002)
