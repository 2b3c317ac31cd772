"""`cvmfs_server ingest`: a tar (or deletions) published as its own transaction."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from .errors import USAGE, FakeError
from .extract import Extractor, Ownership
from .faults import injected
from .options import Parsed, Spec, one_repository, parse
from .paths import clean, kind, split_repo
from .report import Report
from .session import Session, session
from .tree import empty_dir

# The options of cvmfs_server 2.11.5's ingest. Its parser skips what it does not know, so
# `--tolerate-missing-hardlinks`, `-k` and the like are accepted and do nothing, as there.
INGEST = Spec(
    flags={
        "-c": "catalog",
        "--catalog": "catalog",
        "-k": "ignored",
        "--keep-ownership": "ignored",
        "-m": "ignored",
        "--tolerate-missing-hardlinks": "ignored",
    },
    valued={
        "-t": "tar",
        "--tar_file": "tar",
        "-b": "base",
        "--base_dir": "base",
        "-d": "delete",
        "--delete": "delete",
        "-u": "ignored",
        "--user": "ignored",
        "-g": "ignored",
        "--group": "ignored",
        "--gc-db": "gc-db",
    },
)
DEFAULT_DIE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Staged:
    """An unpacked tar waiting to be published; `meta`: its root carries metadata to apply."""

    tree: Path
    meta: bool


def ingest(report: Report, args: Sequence[str]) -> None:
    parsed = parse(INGEST, "ingest", args)
    name, _ = split_repo(one_repository("ingest", parsed))
    report.repo = name
    tar, base, deletes = _request(parsed)
    if report.config.gateway:
        _gateway_rules(tar, deletes)
    with session(report.config, name) as current:
        ownership = _ownership(current)
        lease = base if tar is not None else (deletes[0] if deletes else "")
        _open(current, lease)
        txn = current.open(lease if report.config.gateway else "", "ingest")
        fail = report.fires("FAKE_CVMFS_FAIL_INGEST")
        die = report.fires("FAKE_CVMFS_DIE_INGEST")
        try:
            staged = _stage(report, current, tar, base, ownership, parsed, die)
            if die:
                report.kill()
            if fail:
                raise injected("FAKE_CVMFS_FAIL_INGEST", "Synchronization failed")
        except BaseException:
            current.close(txn, discard=True)
            raise
        _warn_missing(current, deletes)
        tree = staged.tree if staged else None
        current.view.apply(tree, base, deletes, meta=staged is not None and staged.meta)
        current.close(txn, discard=False)
        current.save(current.meta.published(current.scope(txn), "ingest"))
        print(f"Ingested into {name}, revision {current.meta.revision}")


def _open(current: Session, lease: str) -> None:
    """The transaction checks, reported the way cvmfs_server ingest reports them.

    No parent-directory check for the lease: a gateway ingest takes its lease directly
    (mountless publishing), not through `cvmfs_server transaction`.
    """
    try:
        current.check_free(lease)
    except FakeError as error:
        raise FakeError(f"{error.message}\nImpossible to start a transaction") from None


def _request(parsed: Parsed) -> tuple[str | None, str, list[str]]:
    if parsed.has("gc-db"):
        raise FakeError("ingest --gc-db is not supported by this fake", USAGE)
    tar, raw_base = parsed.value("tar"), parsed.value("base")
    deletes = [clean(d) for d in parsed.values("delete")]
    if tar is None and raw_base is None and not deletes:
        raise FakeError("Please provide some parameters: -t TAR_FILE -b BASE_DIR, -d TO_DELETE")
    if tar is None and raw_base is not None:
        raise FakeError("Please provide the tarball to extract, use -t $TARBALL_PATH")
    if tar is not None and raw_base is None:
        raise FakeError("Please set the base directory where to extract the tarball, use -b")
    base = clean(raw_base or "")
    if tar is not None and not base:
        raise FakeError("ingesting into the repository root is not supported (-b /)")
    if "" in deletes:
        raise FakeError("refusing to delete the repository root")
    return tar, base, deletes


def _gateway_rules(tar: str | None, deletes: list[str]) -> None:
    if len(deletes) > 1:
        raise FakeError("Could not delete multiple paths using a gateway in a single transaction.")
    if tar is not None and deletes:
        raise FakeError(
            "Could not delete and add a file in the same transaction while using gateway."
        )


def _ownership(current: Session) -> Ownership:
    """Implied directories and the catalog marker belong to the repository owner."""
    return Ownership(*current.meta.owner)


def _stage(
    report: Report,
    current: Session,
    tar: str | None,
    base: str,
    ownership: Ownership,
    parsed: Parsed,
    die: bool,
) -> Staged | None:
    if tar is None:
        return None
    empty_dir(current.repo.staging)
    extractor = Extractor(current.repo.staging / "tree", ownership)
    with ExitStack() as stack:
        raw: IO[bytes] = sys.stdin.buffer if tar == "-" else stack.enter_context(open(tar, "rb"))
        extractor.run(_dying(report, raw) if die else raw)
    if parsed.has("catalog"):
        extractor.catalog()
    fresh = kind(current.repo.rdonly, base) == "missing"
    return Staged(extractor.dest, extractor.root_entry or fresh)


def _warn_missing(current: Session, deletes: list[str]) -> None:
    for path in deletes:
        if kind(current.repo.rdonly, path) == "missing":
            print(f"Warning: /{path} does not exist in {current.repo.name}", file=sys.stderr)


class DyingReader:
    """Reads `limit` bytes of the tar, then the process dies (SIGKILL) mid-ingest."""

    def __init__(self, report: Report, raw: IO[bytes], limit: int) -> None:
        self.report, self.raw, self.limit, self.seen = report, raw, limit, 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.seen += len(data)
        if self.seen >= self.limit or not data:
            self.report.kill()
        return data


def _dying(report: Report, raw: IO[bytes]) -> IO[bytes]:
    """Half of a tar file; of a pipe FAKE_CVMFS_DIE_INGEST_BYTES (64 KiB) or up to its end."""
    limit = int(report.config.env.get("FAKE_CVMFS_DIE_INGEST_BYTES") or DEFAULT_DIE_BYTES)
    st = os.fstat(raw.fileno())
    if stat.S_ISREG(st.st_mode):
        limit = max(1, st.st_size // 2)
    return cast(IO[bytes], DyingReader(report, raw, limit))
