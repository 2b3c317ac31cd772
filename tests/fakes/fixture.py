"""The `fake_cvmfs` fixture: a fresh repository served by the fake cvmfs_server on PATH."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes import calls as call_log

FAKES = Path(__file__).resolve().parent
EXECUTABLE = FAKES / "cvmfs_server"
REPO = "test.repo"
FAKE_VARIABLES = (
    "FAKE_CVMFS_GATEWAY",
    "FAKE_CVMFS_NO_MOUNTS",
    "FAKE_CVMFS_FAIL_PUBLISH",
    "FAKE_CVMFS_FAIL_TRANSACTION",
    "FAKE_CVMFS_FAIL_INGEST",
    "FAKE_CVMFS_FAIL_OVERLAY",
    "FAKE_CVMFS_DIE_INGEST",
    "FAKE_CVMFS_DIE_INGEST_BYTES",
    "FAKE_CVMFS_FOREIGN_TRANSACTION",
    "FAKE_CVMFS_SLOW_PUBLISH",
    "FAKE_CVMFS_OVERLAY",
)


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class FakeCvmfs:
    """`root` is `$FAKE_CVMFS_PREFIX/test.repo`, the path a publisher writes to."""

    repo: str
    prefix: Path
    state: Path

    @property
    def root(self) -> Path:
        return self.prefix / self.repo

    @property
    def mounts(self) -> bool:
        """True when the repository is served with real mounts (root, no FAKE_CVMFS_NO_MOUNTS)."""
        return bool(json.loads((self.state / self.repo / "meta.json").read_text())["mounts"])

    def run(self, *args: str, stdin: bytes = b"", env: Mapping[str, str] | None = None) -> Result:
        """`cvmfs_server ARGS...` with the fixture's environment plus `env`."""
        done = subprocess.run(
            ["cvmfs_server", *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, **(env or {})},
            cwd="/",  # never inside the repository: a busy mount point could not be remounted
            check=False,
        )
        return Result(done.returncode, done.stdout.decode(), done.stderr.decode())

    def ok(self, *args: str, stdin: bytes = b"", env: Mapping[str, str] | None = None) -> Result:
        """`run`, asserting success."""
        result = self.run(*args, stdin=stdin, env=env)
        assert result.code == 0, f"cvmfs_server {' '.join(args)}: {result.stderr}"
        return result

    def publish_files(self, files: Mapping[str, str]) -> None:
        """One transaction writing `files` (relative path -> text), published."""
        self.ok("transaction", self.repo)
        for name, text in files.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_text(text)
        self.ok("publish", self.repo)

    def calls(self) -> list[call_log.Call]:
        return call_log.calls(self.state)

    def count(self, verb: str, *, ok: bool | None = None) -> int:
        return call_log.count(self.state, verb, ok=ok)

    def revision(self) -> int:
        return call_log.revision(self.state, self.repo)

    def transactions(self) -> list[call_log.Lease]:
        return call_log.transactions(self.state, self.repo)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        return [line.split()[4] for line in mountinfo]


def _unmount(point: str) -> None:
    done = subprocess.run(["umount", point], capture_output=True, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def unmount_under(prefix: Path) -> None:
    """Unmount anything below `prefix`, deepest first; lazily when a mount is busy."""
    root = str(prefix.resolve())
    for point in sorted(_mount_points(), key=len, reverse=True):
        if point == root or point.startswith(root + "/"):
            _unmount(point)


SESSION_LOCK = ".fake-cvmfs-session"


def flock_held(path: Path) -> bool:
    """True when a running process holds an flock on `path`."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _live_session(directory: Path) -> bool:
    """True when a running pytest session holds `directory`'s session lock."""
    return flock_held(directory / SESSION_LOCK)


def sweep(base: Path) -> None:
    """Unmount repositories of fixtures below `base` whose teardown never ran (killed runs):
    mount points `<dir>/cvmfs/<repo>` next to a `<dir>/state/<repo>/meta.json`. Those of a
    session still running (its directory right below `base` holds a live session lock) are
    left alone: two pytest runs on one machine share `base`."""
    root = str(base.resolve())
    for point in sorted(_mount_points(), key=len, reverse=True):
        path = Path(point)
        if not point.startswith(root + "/") or path.parent.name != "cvmfs":
            continue
        if not (path.parent.parent / "state" / path.name / "meta.json").is_file():
            continue
        session = Path(root) / Path(point).relative_to(root).parts[0]
        if not _live_session(session):
            _unmount(point)


@pytest.fixture(scope="session", autouse=True)
def fake_cvmfs_sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No fake repository stays mounted past a session, nor after an earlier killed one; a
    concurrent session's repositories are spared (this one holds its lock while it runs)."""
    basetemp = tmp_path_factory.getbasetemp()
    lock = os.open(basetemp / SESSION_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sweep(basetemp.parent)
        yield
    finally:
        os.close(lock)
        sweep(basetemp)
        sweep(basetemp.parent)


@pytest.fixture(params=["mounts", "plain"])
def fake_cvmfs_modes(request: pytest.FixtureRequest, fake_cvmfs: FakeCvmfs) -> FakeCvmfs:
    """`fake_cvmfs` twice: with real mounts (skipped unless root) and in no-mount mode."""
    if request.param == "mounts":
        if os.geteuid() != 0:
            pytest.skip("mounts need root")
        return fake_cvmfs
    plain = dataclasses.replace(fake_cvmfs, repo="plain.repo")
    plain.ok("mkfs", plain.repo, env={"FAKE_CVMFS_NO_MOUNTS": "1"})
    return plain


@pytest.fixture
def fake_cvmfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCvmfs]:
    """A fresh `test.repo` (revision 0); every mount under the prefix is gone afterwards."""
    fake = FakeCvmfs(REPO, tmp_path / "cvmfs", tmp_path / "state")
    for variable in FAKE_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CVMFS_STATE", str(fake.state))
    monkeypatch.setenv("FAKE_CVMFS_PREFIX", str(fake.prefix))
    try:
        created = fake.run("mkfs", REPO)
        assert created.code == 0, created.stderr
        yield fake
    finally:
        unmount_under(fake.prefix)
