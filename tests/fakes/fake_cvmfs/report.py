"""What one call leaves in state/calls.jsonl, and the fault injection it went through."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from typing import NoReturn

from .faults import fires
from .state import Config, Repo, append_call


@dataclass(slots=True)
class Report:
    config: Config
    argv: list[str]
    start: float = field(default_factory=time.time)
    locked: float | None = None
    repo: str | None = None
    injected: str | None = None
    upper_files: int = 0  # publish: regular files and bytes it found in the transaction
    upper_bytes: int = 0

    def fires(self, variable: str) -> bool:
        """Count this call for a fault variable; remember it when it fires."""
        if fires(self.config, variable):
            self.injected = variable
            return True
        return False

    def revision(self) -> int | None:
        if self.repo is None:
            return None
        repo = Repo.at(self.config, self.repo)
        if not repo.exists():
            return None
        revision: int = json.loads(repo.meta_file.read_text())["revision"]
        return revision

    def record(self, exit_code: int, error: str | None) -> None:
        append_call(
            self.config,
            {
                "argv": self.argv,
                "verb": self.argv[1] if len(self.argv) > 1 else "",
                "repo": self.repo,
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "start": self.start,
                "locked": self.locked,
                "end": time.time(),
                "exit_code": exit_code,
                "revision": self.revision(),
                "error": error,
                "injected": self.injected,
                "upper_files": self.upper_files,
                "upper_bytes": self.upper_bytes,
            },
        )

    def kill(self) -> NoReturn:
        """Die like a crashed publisher: SIGKILL, nothing cleaned up (logged as exit -9)."""
        self.record(-signal.SIGKILL, "killed by FAKE_CVMFS_DIE_INGEST")
        os.kill(os.getpid(), signal.SIGKILL)
        raise SystemExit(-signal.SIGKILL)  # not reached
