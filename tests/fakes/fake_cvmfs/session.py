"""One command's hold on one repository: its record, its view, and the transaction rules."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import (
    ALREADY_IN_TRANSACTION,
    LEASE_BUSY,
    LEASE_NO_DIR,
    LEASE_NO_ENTRY,
    UNHEALTHY,
    FakeError,
)
from .paths import kind, overlaps, parent, under
from .state import Config, Repo, RepoMeta, Transaction, load, save
from .tree import remove
from .views import View, view

LISTED = 20


@dataclass(slots=True)
class Session:
    config: Config
    repo: Repo
    meta: RepoMeta
    view: View

    def save(self, meta: RepoMeta) -> None:
        self.meta = meta
        save(self.repo, meta)

    def check_clean(self) -> None:
        """No-mount mode: outside a transaction the tree must equal the published one."""
        if self.meta.transactions:
            return
        changed = self.view.changes()
        if changed:
            raise FakeError(f"written outside a transaction: {listing(changed)}")

    def check_free(self, path: str) -> None:
        """Refuse a new transaction that collides with an open one (or an overlapping lease)."""
        name = self.repo.name
        if not self.config.gateway and any(t.template for t in self.meta.transactions):
            raise FakeError(
                f"{name} is not based on the newest published revision\n"
                f"Repository {name} is in a transaction and cannot be repaired.\n"
                "(unexpected termination) cannot establish writable mountpoint",
                UNHEALTHY,
            )
        if not self.config.gateway and self.meta.transactions:
            raise FakeError(
                f"Repository {name} is already in a transaction\n"
                "CernVM-FS transaction error: another transaction is already open",
                ALREADY_IN_TRANSACTION,
            )
        for held in self.meta.transactions:
            if overlaps(path, held.path):
                raise FakeError(
                    f"CernVM-FS transaction error: lease busy: {name}/{path} overlaps the "
                    f"lease on {name}/{held.path}",
                    LEASE_BUSY,
                )

    def check_lease_parent(self, path: str) -> None:
        """Like cvmfs: a transaction on a sub path needs that path's parent directory."""
        if not path:
            return
        found = kind(self.repo.rdonly, parent(path))
        if found == "missing":
            raise FakeError(
                f"CernVM-FS transaction error: cannot open transaction on non-existing path "
                f"/{parent(path)}",
                LEASE_NO_ENTRY,
            )
        if found != "dir":
            raise FakeError(
                f"CernVM-FS transaction error: cannot open transaction on /{parent(path)}, "
                "which is not a directory",
                LEASE_NO_DIR,
            )

    def open(self, path: str, what: str, template: tuple[str, str] | None = None) -> Transaction:
        """Record and mount a transaction; without a gateway `path` is only documentation."""
        txn = Transaction(path, what, os.getppid(), time.time(), template)
        self.save(self.meta.opened(txn))
        self.view.settle(self.meta)
        return txn

    def select(self, path: str) -> Transaction:
        """The transaction `publish`/`abort` REPO[/path] means."""
        name, held = self.repo.name, self.meta.transactions
        if not held:
            raise FakeError(f"Repository {name} is not in a transaction")
        if self.config.gateway and path:
            for txn in held:
                if txn.path == path:
                    return txn
            raise FakeError(f"no lease held on {name}/{path} (held: {leases(self.meta)})")
        if len(held) == 1:
            return held[0]
        raise FakeError(
            f"several leases are open on {name} ({leases(self.meta)}): name one as {name}/<path>"
        )

    def scope(self, txn: Transaction) -> str:
        """What publishing `txn` covers: its lease with a gateway, else everything."""
        return txn.path if self.config.gateway else ""

    def outside_leases(self) -> list[str]:
        return [
            p
            for p in self.view.changes()
            if not any(under(p, t.path) for t in self.meta.transactions)
        ]

    def close(self, txn: Transaction, discard: bool) -> None:
        """Close `txn`; the last one to close takes the scratch area and staging with it."""
        meta = self.meta.closed(txn)
        if discard:
            self.view.discard(self.scope(txn) if meta.transactions else "")
        if not meta.transactions:
            self.view.finish()
            remove(self.repo.staging)
        self.save(meta)


def listing(paths: list[str]) -> str:
    shown = ", ".join(paths[:LISTED])
    return shown + (f" (and {len(paths) - LISTED} more)" if len(paths) > LISTED else "")


def leases(meta: RepoMeta) -> str:
    return ", ".join(f"{meta.name}/{t.path}" for t in meta.transactions)


def refuse_cwd_inside(repo: Repo) -> None:
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        return
    if cwd == str(repo.root) or cwd.startswith(f"{repo.root}/"):
        raise FakeError(
            f"Current working directory is in {repo.root}.  Please release, e.g. by 'cd $HOME'."
        )


@contextmanager
def session(config: Config, name: str) -> Iterator[Session]:
    """Open `name`; repair its mount after a crash; leave the mount matching the record."""
    repo = Repo.at(config, name)
    meta = load(repo)
    current = Session(config, repo, meta, view(repo, meta))
    refuse_cwd_inside(repo)
    current.view.settle(meta)
    current.check_clean()
    try:
        yield current
    except BaseException:
        try:
            current.view.settle(current.meta)
        except FakeError as error:
            print(error.message, file=sys.stderr)
        raise
    current.view.settle(current.meta)
