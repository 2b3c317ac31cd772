"""Locks between ducc processes, and ducc's own record of the transactions it opens.

A record names the process (pid and start time, so a reused pid is not mistaken for the
owner) that opened a `cvmfs_server` transaction; after a crash the next run can tell a
transaction it may abort from one it must leave alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ducc.errors import AnotherDuccRunning


def process_start_ticks(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot, or None if it does not run."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after the last ')' are fixed.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19])


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    repo: str
    path: str | None
    pid: int
    start_ticks: int | None
    host: str
    opened_at: float
    kind: str = "transaction"

    @classmethod
    def mine(cls, repo: str, path: str | None, kind: str = "transaction") -> TransactionRecord:
        pid = os.getpid()
        return cls(
            repo, path, pid, process_start_ticks(pid), socket.gethostname(), time.time(), kind
        )

    def owner_alive(self) -> bool:
        """Whether the ducc process that opened the transaction still runs (on this host)."""
        if self.host != socket.gethostname():
            return True  # another machine's process: never presume it dead
        ticks = process_start_ticks(self.pid)
        return ticks is not None and (self.start_ticks is None or ticks == self.start_ticks)


class TransactionRecords:
    """Records under `<state>/transactions/`, one JSON file per repository and lease path."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "transactions"

    def _file(self, repo: str, path: str | None) -> Path:
        key = repo if not path else f"{repo}@{path.strip('/').replace('/', '%')}"
        return self.directory / f"{key}.json"

    def write(self, record: TransactionRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self._file(record.repo, record.path)
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(asdict(record)))
        os.replace(tmp, target)

    def remove(self, repo: str, path: str | None) -> None:
        self._file(repo, path).unlink(missing_ok=True)

    def of_repo(self, repo: str) -> list[TransactionRecord]:
        if not self.directory.is_dir():
            return []
        found = []
        for candidate in sorted(self.directory.glob("*.json")):
            try:
                record = TransactionRecord(**json.loads(candidate.read_text()))
            except (OSError, ValueError, TypeError):
                continue  # unreadable records say nothing about ownership
            if record.repo == repo:
                found.append(record)
        return found


class Lock:
    """An exclusive `flock` on a file (created) or a directory, held by this process."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._fd: int | None = None

    def acquire(self, *, wait: bool) -> None:
        if self.path.is_dir():
            fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise AnotherDuccRunning(
                f"another ducc is already publishing into {self.what}",
                hint="wait for it to finish, or run with --wait",
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def held(self, *, wait: bool) -> Iterator[None]:
        self.acquire(wait=wait)
        try:
            yield
        finally:
            self.release()
