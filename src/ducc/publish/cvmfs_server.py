"""A thin wrapper over the `cvmfs_server` calls ducc makes: pure argv builders and runners.

The builders are pure functions (unit-tested on their own); `CvmfsServer` runs them through
`ducc.run`. `repo` is always the bare repository name; a `path` scopes a transaction to a
lease path (`REPO/.flat/ab`) on a gateway publisher.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO

from ducc import log
from ducc.run import run, run_feeding

EXECUTABLE = "cvmfs_server"
DELETE_BATCH = 50  # paths per `ingest --delete` call, as DUCC batches them
_log = log.get("cvmfs_server")


def _target(repo: str, path: str | None) -> str:
    return f"{repo}/{path.strip('/')}" if path else repo


def list_argv(executable: str = EXECUTABLE) -> list[str]:
    return [executable, "list"]


def transaction_argv(
    repo: str,
    path: str | None = None,
    template: tuple[str, str] | None = None,
    executable: str = EXECUTABLE,
) -> list[str]:
    """`template` (source, destination): the destination starts as a catalog-level clone of
    the source (CernVM-FS 2.8+; one per transaction)."""
    argv = [executable, "transaction"]
    if template is not None:
        src, dst = template
        argv += ["-T", f"/{src.strip('/')}=/{dst.strip('/')}"]
    return [*argv, _target(repo, path)]


def publish_argv(repo: str, path: str | None = None, executable: str = EXECUTABLE) -> list[str]:
    return [executable, "publish", _target(repo, path)]


def abort_argv(repo: str, path: str | None = None, executable: str = EXECUTABLE) -> list[str]:
    return [executable, "abort", "-f", _target(repo, path)]


def ingest_tar_argv(
    repo: str,
    base_dir: str,
    *,
    catalog: bool = True,
    delete: Sequence[str] = (),
    executable: str = EXECUTABLE,
) -> list[str]:
    """A tar on stdin into `base_dir`; `delete` paths go first, in the same transaction.

    The tar is ducc's rebuild: every hard link points at an earlier entry of it, since
    cvmfs' ingest fails on any other (and has no `--tolerate-missing-hardlinks`)."""
    argv = [executable, "ingest"]
    for path in delete:
        argv += ["--delete", path.strip("/")]
    if catalog:
        argv.append("--catalog")
    argv += ["-t", "-", "-b", base_dir.strip("/")]
    return [*argv, repo]


def ingest_delete_argv(repo: str, paths: Sequence[str], executable: str = EXECUTABLE) -> list[str]:
    if not paths:
        raise ValueError("ingest --delete needs at least one path")
    argv = [executable, "ingest"]
    for path in paths:
        argv += ["--delete", path.strip("/")]
    return [*argv, repo]


def overlay_argv(
    repo: str, layers: Sequence[str], dest: str, executable: str = EXECUTABLE
) -> list[str]:
    joined = ",".join(layer.strip("/") for layer in layers)
    return [executable, "overlay", "-l", joined, "-d", dest.strip("/"), repo]


@dataclass(frozen=True, slots=True)
class RepositoryStatus:
    name: str
    in_transaction: bool


_LIST_LINE = re.compile(r"^(?P<name>\S+)\s+\((?P<info>[^)]*)\)(?P<rest>.*)$")


def parse_list(output: str) -> dict[str, RepositoryStatus]:
    """Parse `cvmfs_server list`: `<name> (stratum0 / local)[ - in transaction]` per line.

    Names are matched exactly, never as substrings (DUCC once matched substrings).
    """
    found: dict[str, RepositoryStatus] = {}
    for line in output.splitlines():
        match = _LIST_LINE.match(line.strip())
        if match is None:
            continue
        busy = "transaction" in (match.group("info") + match.group("rest")).lower()
        found[match.group("name")] = RepositoryStatus(match.group("name"), busy)
    return found


class CvmfsServer:
    """Runs `cvmfs_server`; counts publishes and ingests so callers can report them."""

    def __init__(self, executable: str = EXECUTABLE) -> None:
        self.executable = executable
        self.publishes = 0
        self.ingests = 0

    def repositories(self) -> dict[str, RepositoryStatus]:
        return parse_list(run(list_argv(self.executable)).stdout.decode(errors="replace"))

    def open(
        self, repo: str, path: str | None = None, template: tuple[str, str] | None = None
    ) -> None:
        run(transaction_argv(repo, path, template, self.executable))
        _log.info("transaction_opened", repo=repo, path=path, template=template)

    def publish(self, repo: str, path: str | None = None) -> None:
        run(publish_argv(repo, path, self.executable))
        self.publishes += 1
        _log.info("transaction_published", repo=repo, path=path)

    def abort(self, repo: str, path: str | None = None) -> None:
        run(abort_argv(repo, path, self.executable))
        _log.warning("transaction_aborted", repo=repo, path=path)

    def ingest_tar(
        self,
        repo: str,
        base_dir: str,
        feed: Callable[[IO[bytes]], None],
        *,
        delete: Sequence[str] = (),
    ) -> None:
        argv = ingest_tar_argv(repo, base_dir, delete=delete, executable=self.executable)
        run_feeding(argv, feed)
        self.ingests += 1
        _log.info("layer_ingested", repo=repo, base_dir=base_dir)

    def ingest_delete(self, repo: str, paths: Sequence[str]) -> None:
        for start in range(0, len(paths), DELETE_BATCH):
            batch = paths[start : start + DELETE_BATCH]
            run(ingest_delete_argv(repo, batch, self.executable))
            self.ingests += 1
        _log.info("paths_deleted", repo=repo, count=len(paths))

    def overlay(self, repo: str, layers: Sequence[str], dest: str) -> None:
        run(overlay_argv(repo, layers, dest, self.executable))
        self.publishes += 1

    def has_overlay(self) -> bool:
        """Whether this `cvmfs_server` knows the `overlay` command (servers newer than 2.12;
        2.11.5 and the 2.12 development branch answer "Unrecognized command")."""
        out = run([self.executable, "help"], check=False)
        return has_command(out.stdout.decode(errors="replace"), "overlay")


def has_command(help_text: str, command: str) -> bool:
    """Whether `cvmfs_server help` lists `command` under "Supported Commands" (each command
    starts an indented line)."""
    return re.search(rf"^  {re.escape(command)}(\s|$)", help_text, re.MULTILINE) is not None
