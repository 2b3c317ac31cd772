"""What each `cvmfs_server` call costs a real stratum 0, measured where it is paid.

`tests/support/meter/cvmfs_server` (a shell script), first on PATH, stands in for the real
`cvmfs_server` (`DUCC_METER_SERVER`): before a `publish` it counts the regular files and
bytes in the transaction's upper (scratch) directory, which the publish must compress and
hash, then runs the real command and appends one JSON line per call to `DUCC_METER_LOG`. It
changes nothing the real server does: arguments, standard streams and the exit code pass
through. This module reads its log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

METER_DIR = Path(__file__).resolve().parent / "meter"
LOG_VARIABLE = "DUCC_METER_LOG"
SERVER_VARIABLE = "DUCC_METER_SERVER"


@dataclass(frozen=True, slots=True)
class Call:
    verb: str
    argv: list[str]
    repo: str
    seconds: float
    exit_code: int
    upper_files: int = 0  # publish: regular files in the upper dir before it ran
    upper_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def template(self) -> bool:
        return self.verb == "transaction" and any(a.startswith("-T") for a in self.argv)


def environment(log: Path, server: str) -> dict[str, str]:
    """Variables that make ducc (run with them) call the meter instead of `server`."""
    return {
        "PATH": f"{METER_DIR}{os.pathsep}{os.environ.get('PATH', '')}",
        LOG_VARIABLE: os.fspath(log),
        SERVER_VARIABLE: server,
    }


def calls(log: Path) -> list[Call]:
    if not log.is_file():
        return []
    return [Call(**json.loads(line)) for line in log.read_text().splitlines() if line]
