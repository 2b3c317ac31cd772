"""The one place external commands are run: argv lists, never a shell.

A failure raises `CommandFailed` carrying a copy-pastable command line and the output.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO

from ducc import log
from ducc.errors import CommandFailed

# After a killed command, how long its output may still take to end (a process outside its
# group holding the pipe must not hang ducc).
READER_GRACE = 10.0
_log = log.get("run")


def command_line(argv: Sequence[str]) -> str:
    return shlex.join(argv)


def run(
    argv: Sequence[str],
    *,
    input_bytes: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` to completion; raise `CommandFailed` on a non-zero exit when `check`."""
    _log.debug("run", command=command_line(argv))
    try:
        proc = subprocess.run(
            list(argv),
            input=input_bytes,
            stdin=subprocess.DEVNULL if input_bytes is None else None,
            capture_output=True,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            check=False,
            start_new_session=True,  # a terminal's Ctrl-C reaches ducc, which decides
        )
    except FileNotFoundError:
        raise CommandFailed(command_line(argv), 127, f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(command_line(argv), -1, f"timed out after {exc.timeout} s") from None
    if check and proc.returncode != 0:
        raise CommandFailed(command_line(argv), proc.returncode, _text(proc))
    return proc


def run_feeding(
    argv: Sequence[str],
    feed: Callable[[IO[bytes]], None],
    *,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `argv` with `feed(stdin)` writing its input as a stream.

    If `feed` raises, the command is killed before its input is complete (so a consumer
    such as `cvmfs_server ingest` never sees a clean end of input) and the error re-raised:
    the command with every process it started (its process group: `cvmfs_server` is a
    script whose `cvmfs_swissknife` reads the input), else a child left reading would hold
    the pipe, and the repository, forever. If the command stops reading early, its own exit
    code and output are reported.
    """
    _log.debug("run", command=command_line(argv))
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise CommandFailed(command_line(argv), 127, f"{argv[0]}: command not found") from None
    stdin, stdout = proc.stdin, proc.stdout
    if stdin is None or stdout is None:  # pragma: no cover - Popen with PIPE always sets both
        raise RuntimeError("subprocess pipes missing")
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(stdout.read()), daemon=True)
    reader.start()
    try:
        feed(stdin)
        stdin.close()
    except BrokenPipeError:
        pass  # the command stopped reading; its exit code says why
    except BaseException:
        _kill_group(proc)
        proc.wait()
        reader.join(timeout=READER_GRACE)
        raise
    code = proc.wait()
    reader.join()
    text = b"".join(output)
    if code != 0:
        raise CommandFailed(command_line(argv), code, text.decode(errors="replace"))
    return subprocess.CompletedProcess(list(argv), code, text, b"")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL to the command's process group (it leads one: `start_new_session`)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return (proc.stdout + proc.stderr).decode(errors="replace")
