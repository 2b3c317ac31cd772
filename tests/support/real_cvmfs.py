"""A real CernVM-FS stratum 0 for the tests, where one is installed: a fresh repository per
test module, created with `cvmfs_server mkfs -o root` and removed with `rmfs -f`.

Only repositories named `ducc-test-*` are ever created or removed. A repository left by a
killed run (its lock under /run/lock/ducc-tests not held by a live process) is removed at
the next session's start; those of a concurrent session are left alone.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.fixture import flock_held

# Where a real CernVM-FS puts its programs (CERN's packages and ../shared/cvmfs/install.sh):
# looked up on this path only, so the fake on a test's PATH is never taken for it.
SYSTEM_PATH = "/usr/bin:/usr/sbin:/bin:/sbin"
PREFIX = Path("/cvmfs")
SPOOL = Path("/var/spool/cvmfs")
LOCKS = Path("/run/lock/ducc-tests")
NAME_PREFIX = "ducc-test-"
_LIST_LINE = re.compile(r"^(?P<name>\S+)\s+\((?P<info>[^)]*)\)")


def server_executable() -> str | None:
    return shutil.which("cvmfs_server", path=SYSTEM_PATH)


def missing() -> str | None:
    """Why no real stratum 0 can serve tests here, or None when one can."""
    if os.geteuid() != 0:
        return "a stratum 0 needs root"
    server = server_executable()
    if server is None:
        return "cvmfs_server is not installed (../shared/cvmfs/install.sh or CERN's packages)"
    if _is_script_of_ours(server):
        return f"{server} is not a real cvmfs_server"
    if shutil.which("cvmfs2", path=SYSTEM_PATH) is None:
        return "cvmfs2 (the CernVM-FS client) is not installed"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if not _answers("127.0.0.1", 80):
        return "Apache does not answer on 127.0.0.1:80 (service apache2 start)"
    return None


def _is_script_of_ours(path: str) -> bool:
    with open(path, "rb") as handle:
        return b"Fake cvmfs_server" in handle.read(4096)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class Done:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class RealCvmfs:
    """One repository of the real stratum 0: `root` is `/cvmfs/<repo>`, where ducc writes."""

    repo: str
    server: str

    @property
    def prefix(self) -> Path:
        return PREFIX

    @property
    def root(self) -> Path:
        return PREFIX / self.repo

    @property
    def upper(self) -> Path:
        """The transaction's scratch (overlayfs upper) directory."""
        return SPOOL / self.repo / "scratch" / "current"

    def run(self, *args: str, stdin: bytes = b"", timeout: float = 600) -> Done:
        done = subprocess.run(
            [self.server, *args],
            input=stdin,
            capture_output=True,
            cwd="/",  # never inside the repository: cvmfs refuses to publish then
            timeout=timeout,
            check=False,
        )
        return Done(done.returncode, done.stdout.decode(), done.stderr.decode())

    def ok(self, *args: str, stdin: bytes = b"") -> Done:
        done = self.run(*args, stdin=stdin)
        assert done.code == 0, f"cvmfs_server {' '.join(args)}: {done.stdout}{done.stderr}"
        return done

    def in_transaction(self) -> bool:
        return listing(self.server).get(self.repo, False)

    def publish_files(self, files: dict[str, str]) -> None:
        """One transaction writing `files` (relative path -> text), published."""
        self.ok("transaction", self.repo)
        for name, text in files.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_text(text)
        self.ok("publish", self.repo)


def listing(server: str) -> dict[str, bool]:
    """`cvmfs_server list`: each repository and whether it is in a transaction."""
    out = subprocess.run(
        [server, "list"], capture_output=True, text=True, cwd="/", check=False
    ).stdout
    found = {}
    for line in out.splitlines():
        match = _LIST_LINE.match(line.strip())
        if match:
            found[match["name"]] = "transaction" in match["info"]
    return found


def upper_usage(upper: Path) -> tuple[int, int]:
    """Regular files and their bytes in a transaction's upper dir, counted per path, as the
    publish processes them (whiteouts and directories are not files)."""
    files = size = 0
    for directory, _, names in os.walk(upper):
        for name in names:
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISREG(info.st_mode):
                files += 1
                size += info.st_size
    return files, size


def _lock_path(repo: str) -> Path:
    return LOCKS / repo


def remove(server: str, repo: str) -> None:
    """Abort what is open (only ever our own test repositories) and remove the repository."""
    if not repo.startswith(NAME_PREFIX):
        raise ValueError(f"refusing to remove {repo}: not a test repository")
    if listing(server).get(repo):
        subprocess.run([server, "abort", "-f", repo], capture_output=True, cwd="/", check=False)
    subprocess.run([server, "rmfs", "-f", repo], capture_output=True, cwd="/", check=False)
    _lock_path(repo).unlink(missing_ok=True)


def sweep(server: str) -> None:
    """Remove test repositories of runs that were killed before their teardown."""
    for repo in listing(server):
        if repo.startswith(NAME_PREFIX) and not flock_held(_lock_path(repo)):
            remove(server, repo)


def repository(label: str) -> Iterator[RealCvmfs]:
    """A fresh repository `ducc-test-<label>-<random>.local` for as long as the caller holds
    the iterator; removed afterwards, also when the caller failed."""
    server = server_executable()
    assert server is not None
    clean = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:20]
    name = f"{NAME_PREFIX}{clean}-{secrets.token_hex(3)}.local"
    LOCKS.mkdir(parents=True, exist_ok=True)
    lock = os.open(_lock_path(name), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        created = subprocess.run(
            [server, "mkfs", "-o", "root", name], capture_output=True, cwd="/", check=False
        )
        assert created.returncode == 0, created.stdout.decode() + created.stderr.decode()
        yield RealCvmfs(name, server)
    finally:
        remove(server, name)
        os.close(lock)
