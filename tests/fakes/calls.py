"""Read what the fake cvmfs_server recorded: its call log and each repository's record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Call:
    """One cvmfs_server invocation; `revision` is the repository's revision after it."""

    argv: tuple[str, ...]
    verb: str
    repo: str | None
    pid: int
    ppid: int
    start: float
    locked: float | None
    end: float
    exit_code: int
    revision: int | None
    error: str | None
    injected: str | None
    upper_files: int = 0  # publish: regular files and bytes found in the transaction
    upper_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @property
    def template(self) -> bool:
        """A transaction opened with a template (a catalog-level clone)."""
        return self.verb == "transaction" and any(
            a.startswith(("-T", "--template", "-U")) for a in self.argv
        )


@dataclass(frozen=True, slots=True)
class Lease:
    """An open transaction: `path` '' is the whole repository; `pid` the caller's pid."""

    path: str
    kind: str
    pid: int


def calls(state_dir: Path) -> list[Call]:
    log = state_dir / "calls.jsonl"
    if not log.exists():
        return []
    result = []
    for line in log.read_text().splitlines():
        raw = json.loads(line)
        result.append(Call(**{**raw, "argv": tuple(raw["argv"])}))
    return result


def count(state_dir: Path, verb: str, *, ok: bool | None = None) -> int:
    """How many `verb` calls were made (only successful or failed ones with `ok`)."""
    return sum(1 for c in calls(state_dir) if c.verb == verb and (ok is None or c.ok == ok))


def _meta(state_dir: Path, repo: str) -> dict[str, object]:
    raw: dict[str, object] = json.loads((state_dir / repo / "meta.json").read_text())
    return raw


def revision(state_dir: Path, repo: str) -> int:
    value = _meta(state_dir, repo)["revision"]
    assert isinstance(value, int)
    return value


def transactions(state_dir: Path, repo: str) -> list[Lease]:
    raw = _meta(state_dir, repo)["transactions"]
    assert isinstance(raw, list)
    return [Lease(t["path"], t["kind"], t["pid"]) for t in raw]
