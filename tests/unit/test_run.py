"""`run_feeding`: a feed that fails kills the command with every process it started, so
no child is left reading the pipe (`cvmfs_server` is a script; `cvmfs_swissknife` reads)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import IO

import pytest

from ducc.errors import CommandFailed
from ducc.run import run_feeding


class FeedBroke(Exception):
    pass


def test_a_failed_feed_kills_the_commands_children_too(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = f"cat > /dev/null & echo $! > {pid_file}; wait"

    def feed(stdin: IO[bytes]) -> None:
        stdin.write(b"half of a tar")
        stdin.flush()
        while not pid_file.is_file() or not pid_file.read_text().strip():
            time.sleep(0.01)
        raise FeedBroke

    started = time.monotonic()
    with pytest.raises(FeedBroke):
        run_feeding(["sh", "-c", script], feed)
    assert time.monotonic() - started < 20  # before: blocked for ever on the child's pipe
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 20
    while _running(child):  # killed: gone, or a zombie until its new parent reaps it
        assert time.monotonic() < deadline, "the command's child still runs"
        time.sleep(0.01)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_command_that_fails_reports_its_output() -> None:
    def feed(stdin: IO[bytes]) -> None:
        stdin.write(b"x")

    with pytest.raises(CommandFailed, match="refused"):
        run_feeding(["sh", "-c", "cat > /dev/null; echo refused; exit 3"], feed)
