"""The state directory: configuration from the environment, repository records, the lock."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import USAGE, FakeError
from .paths import join


@dataclass(frozen=True, slots=True)
class Config:
    state: Path
    prefix: Path
    gateway: bool
    no_mounts: bool
    env: Mapping[str, str]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        if not env.get("FAKE_CVMFS_STATE"):
            raise FakeError("FAKE_CVMFS_STATE is not set (the fake's state directory)", USAGE)
        state = Path(env["FAKE_CVMFS_STATE"]).resolve()
        prefix = Path(env.get("FAKE_CVMFS_PREFIX") or state / "cvmfs").resolve()
        gateway = env.get("FAKE_CVMFS_GATEWAY", "") == "1"
        no_mounts = env.get("FAKE_CVMFS_NO_MOUNTS", "") == "1" or os.geteuid() != 0
        return cls(state, prefix, gateway, no_mounts, dict(env))


@dataclass(frozen=True, slots=True)
class Transaction:
    """An open transaction; `path` is its lease ('' = the whole repository); `template` the
    (source, destination) its catalog-level clone came from, if it was opened with one."""

    path: str
    kind: str  # transaction, ingest, overlay, foreign
    pid: int
    opened: float
    template: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    revision: int
    path: str
    verb: str
    time: float


@dataclass(frozen=True, slots=True)
class RepoMeta:
    name: str
    revision: int
    owner: tuple[int, int]
    mounts: bool
    transactions: tuple[Transaction, ...] = ()
    publishes: tuple[Publish, ...] = ()

    def opened(self, txn: Transaction) -> RepoMeta:
        return dataclasses.replace(self, transactions=(*self.transactions, txn))

    def closed(self, txn: Transaction) -> RepoMeta:
        rest = tuple(t for t in self.transactions if t != txn)
        return dataclasses.replace(self, transactions=rest)

    def published(self, path: str, verb: str) -> RepoMeta:
        record = Publish(self.revision + 1, path, verb, time.time())
        return dataclasses.replace(
            self, revision=self.revision + 1, publishes=(*self.publishes, record)
        )


@dataclass(frozen=True, slots=True)
class Repo:
    """Where one repository lives: `home` in the state dir, `root` under the prefix."""

    name: str
    home: Path
    root: Path

    @classmethod
    def at(cls, config: Config, name: str) -> Repo:
        return cls(name, config.state / name, config.prefix / name)

    @property
    def rdonly(self) -> Path:
        return self.home / "rdonly"

    @property
    def scratch(self) -> Path:
        return self.home / "scratch"

    @property
    def upper(self) -> Path:
        return self.scratch / "upper"

    @property
    def work(self) -> Path:
        return self.scratch / "work"

    @property
    def staging(self) -> Path:
        return self.home / "staging"

    @property
    def templates(self) -> Path:
        """Catalog-level clones of open template transactions: a lower layer of the overlay
        above the published tree, so they cost the upper dir nothing, as in cvmfs."""
        return self.home / "templates"

    @property
    def meta_file(self) -> Path:
        return self.home / "meta.json"

    def exists(self) -> bool:
        return self.meta_file.is_file()

    def published(self, rel: str) -> Path:
        return join(self.rdonly, rel)


def load(repo: Repo) -> RepoMeta:
    if not repo.exists():
        raise FakeError(f"CernVM-FS error: repository {repo.name} not found")
    raw = json.loads(repo.meta_file.read_text())
    return RepoMeta(
        name=raw["name"],
        revision=raw["revision"],
        owner=(raw["owner"][0], raw["owner"][1]),
        mounts=raw["mounts"],
        transactions=tuple(_transaction(t) for t in raw["transactions"]),
        publishes=tuple(Publish(**p) for p in raw["publishes"]),
    )


def _transaction(raw: dict[str, Any]) -> Transaction:
    template = raw.get("template")
    return Transaction(**{**raw, "template": tuple(template) if template else None})


def save(repo: Repo, meta: RepoMeta) -> None:
    write_json(repo.meta_file, dataclasses.asdict(meta))


def write_json(path: Path, data: Any) -> None:
    """Atomic replace, so a killed process never leaves half a record."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


def names(config: Config) -> list[str]:
    if not config.state.is_dir():
        return []
    return sorted(p.parent.name for p in config.state.glob("*/meta.json"))


@contextmanager
def locked(config: Config) -> Iterator[float]:
    """Hold the state lock (flock) for a whole command; yields when it was acquired."""
    config.state.mkdir(parents=True, exist_ok=True)
    fd = os.open(config.state / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.time()
    finally:
        os.close(fd)


def append_call(config: Config, record: Mapping[str, Any]) -> None:
    """One JSON line per call in state/calls.jsonl, written with a single append."""
    config.state.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    fd = os.open(config.state / "calls.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
