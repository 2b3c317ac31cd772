"""The CernVM-FS publisher: products are written inside `cvmfs_server` transactions.

Each tree product is a transaction of its own, complete when published. One that starts as
a copy of another (chain n of chain n-1, a flat tree of its top chain) is a template
transaction: cvmfs clones the source at catalog level, so the publish processes only what
is written afterwards. Nothing published is ever hard-linked inside a transaction: overlayfs
would copy every linked file up whole, and the publish would process all of it again.

ducc aborts only transactions it opened: an error inside aborts and re-raises; a
transaction found open at start is aborted only when ducc's own record shows that a ducc
process which no longer runs opened it (or with `--abort-stale`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, cast

from ducc import log
from ducc.errors import DuccError, PublishError, RepositoryBusy
from ducc.interrupts import INTERRUPTS
from ducc.layers.rebuild import RebuildStats, rebuild_tar
from ducc.publish.base import CATALOG_MARKER, Ingested, LayerOpener
from ducc.publish.cvmfs_server import CvmfsServer
from ducc.publish.records import Lock, TransactionRecord, TransactionRecords

_log = log.get("publish.cvmfs")


class CvmfsPublisher:
    kind = "cvmfs"

    def __init__(
        self,
        repo: str,
        subdir: str,
        *,
        prefix: Path,
        state_dir: Path,
        server: CvmfsServer | None = None,
        abort_stale: bool = False,
        gateway: bool = False,
    ) -> None:
        self.repo = repo
        self.mount = prefix / repo
        self.root = self.mount / subdir if subdir else self.mount
        self.server = server or CvmfsServer()
        self.records = TransactionRecords(state_dir)
        self.lock = Lock(state_dir / "locks" / f"{repo}.lock", f"repository {repo}")
        self.abort_stale = abort_stale
        self.leases = gateway
        self._overlay: bool | None = None

    @property
    def publishes(self) -> int:
        return self.server.publishes

    @property
    def ingests(self) -> int:
        return self.server.ingests

    def _rel(self, path: Path) -> str:
        return os.fspath(path.relative_to(self.mount))

    @contextlib.contextmanager
    def session(self, *, wait: bool) -> Iterator[None]:
        with self.lock.held(wait=wait):
            status = self.server.repositories().get(self.repo)
            if status is None:
                raise PublishError(
                    f"repository {self.repo} is not listed by cvmfs_server list",
                    hint="create it with cvmfs_server mkfs, or check cvmfs_repo in the recipe",
                )
            if status.in_transaction:
                self._recover()
            else:
                self._forget_dead_records()
            yield

    def _forget_dead_records(self) -> None:
        """No transaction is open, yet a ducc killed between writing a record and opening,
        or between publishing and removing it, left one: kept, it would pass a transaction
        somebody opens later off as that dead ducc's, to be aborted."""
        for record in self.records.of_repo(self.repo):
            if not record.owner_alive():
                _log.info("stale_transaction_record_removed", repo=self.repo, pid=record.pid)
                self.records.remove(self.repo, record.path)

    def _recover(self) -> None:
        """The repository is in a transaction at start: abort it only if it is ours."""
        records = self.records.of_repo(self.repo)
        live = [r for r in records if r.owner_alive()]
        if live:
            raise RepositoryBusy(
                f"repository {self.repo} is in a transaction held by a running ducc "
                f"(pid {live[0].pid}); nothing was touched"
            )
        if records:
            for record in records:
                _log.warning(
                    "stale_transaction_aborted",
                    repo=self.repo,
                    path=record.path,
                    pid=record.pid,
                    reason="opened by a ducc process that no longer runs",
                )
                self.server.abort(self.repo, record.path)
                self.records.remove(self.repo, record.path)
            return
        if not self.abort_stale:
            raise RepositoryBusy(
                f"repository {self.repo} is already in a transaction that ducc did not open; "
                "nothing was touched",
                hint="publish or abort it yourself, or run with --abort-stale to abort it",
            )
        _log.warning("foreign_transaction_aborted", repo=self.repo, reason="--abort-stale")
        self.server.abort(self.repo)

    def _lease_path(self, lease: str | None) -> str | None:
        if not self.leases:
            return None
        target = self.root / lease if lease else self.root
        rel = self._rel(target)
        return None if rel == "." else rel

    def transaction(self, lease: str | None = None) -> contextlib.AbstractContextManager[None]:
        return self._transaction(self._lease_path(lease))

    @contextlib.contextmanager
    def product(self, dest: Path, *, template: Path | None = None) -> Iterator[Path]:
        """A transaction of its own (under a lease on `dest` on a gateway); with a template,
        a catalog-level clone of it at `dest`."""
        if os.path.lexists(dest):
            raise PublishError(f"{dest} already exists", hint="remove it first to rebuild it")
        lease = self._rel(dest) if self.leases else None
        clone = (self._rel(template), self._rel(dest)) if template is not None else None
        with self._transaction(lease, clone):
            if template is None:
                dest.mkdir()
            yield dest

    def directories(self, paths: Sequence[Path]) -> None:
        """One transaction (the repository's lease) for all that are missing, if any."""
        missing = [p for p in paths if not (p / CATALOG_MARKER).is_file()]
        if not missing:
            return
        with self.transaction():
            for path in missing:
                path.mkdir(parents=True, exist_ok=True)
                (path / CATALOG_MARKER).touch()

    def overlay_available(self) -> bool:
        if self._overlay is None:
            self._overlay = self.server.has_overlay()
        return self._overlay

    @contextlib.contextmanager
    def _transaction(
        self, path: str | None, template: tuple[str, str] | None = None
    ) -> Iterator[None]:
        self.records.write(TransactionRecord.mine(self.repo, path))
        try:
            with INTERRUPTS.shielded():  # a signal must not leave us unsure whether it opened
                self.server.open(self.repo, path, template)
        except BaseException:
            self.records.remove(self.repo, path)
            raise
        try:
            INTERRUPTS.check()
            yield
            with INTERRUPTS.shielded():
                self.server.publish(self.repo, path)
        except BaseException:
            self._abort_own(path)
            raise
        self.records.remove(self.repo, path)
        INTERRUPTS.check()  # a signal during the publish: it is complete, now stop

    def _abort_own(self, path: str | None) -> None:
        with INTERRUPTS.shielded():
            try:
                self.server.abort(self.repo, path)
            except DuccError as exc:
                _log.error("abort_failed", repo=self.repo, path=path, error=str(exc))
                return  # keep the record: the next run sees a stale transaction of ours
        self.records.remove(self.repo, path)

    chains_in_ingest = False  # an ingest is a transaction of its own

    def ingest_layer(
        self,
        layerfs: Path,
        layer: LayerOpener,
        lower: Path | None = None,
        *,
        replace: bool = False,
        chain: Path | None = None,
    ) -> Ingested:
        """One ingest. An existing tree is ingested over: left by a run that died before the
        layer's metadata, it is complete (an ingest publishes whole or not at all) and holds
        what the same blob gives again. With `replace` (`--overwrite-layers`) it is deleted
        first, by an ingest of its own: cvmfs 2.11.5 crashes on deleting a nested catalog
        and ingesting into it at once. Between the two, the layer tree is missing."""
        if chain is not None:
            raise ValueError("cvmfs_server ingest builds no chain (chains_in_ingest is False)")
        if replace and os.path.lexists(layerfs):
            self.server.ingest_delete(self.repo, [self._rel(layerfs)])
        measured: list[RebuildStats] = []

        def feed(stdin: IO[bytes]) -> None:
            out = cast(BinaryIO, stdin)  # a pipe: only write() is used
            stats = rebuild_tar(
                layer.open(), out, limits=layer.limits, name=layer.name, lower=lower
            )
            measured.append(stats)

        self.records.write(TransactionRecord.mine(self.repo, None, kind="ingest"))
        try:
            self.server.ingest_tar(self.repo, self._rel(layerfs), feed)
        except BaseException:
            self._clean_failed_ingest()
            raise
        self.records.remove(self.repo, None)
        return Ingested(measured[0].digests, plain=measured[0].plain)

    def overlay(self, layers: Sequence[Path], dest: Path) -> None:
        self.records.write(TransactionRecord.mine(self.repo, None, kind="overlay"))
        try:
            self.server.overlay(self.repo, [self._rel(p) for p in layers], self._rel(dest))
        except BaseException:
            self._clean_failed_ingest()
            raise
        self.records.remove(self.repo, None)

    def _clean_failed_ingest(self) -> None:
        """A failed ingest or overlay may leave the repository in the transaction it opened:
        ours, so it is aborted."""
        with INTERRUPTS.shielded():
            try:
                status = self.server.repositories().get(self.repo)
                if status is not None and status.in_transaction:
                    self.server.abort(self.repo)
            except DuccError as exc:
                _log.error("ingest_cleanup_failed", repo=self.repo, error=str(exc))
                return  # keep the record for the next run
        self.records.remove(self.repo, None)

    def delete(self, paths: Sequence[Path]) -> None:
        existing = [self._rel(p) for p in paths if p.exists() or p.is_symlink()]
        if existing:
            self.server.ingest_delete(self.repo, existing)
