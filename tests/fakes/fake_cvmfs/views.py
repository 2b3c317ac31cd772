"""How the repository looks at `$PREFIX/<repo>`: mounts as root, a plain directory otherwise.

RootView: a read-only bind mount of the published tree outside transactions and an overlayfs
(lower = published tree, upper = scratch) while any transaction is open. PlainView: a plain
directory compared against the published tree at every call, so writes outside a transaction
are found at the next call.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from . import mounts
from .fingerprint import differences, fingerprint
from .paths import join, lexists, locate
from .state import Repo, RepoMeta
from .tree import (
    copy_tree,
    empty_dir,
    ensure_dirs,
    is_opaque,
    merge,
    mirror,
    remove,
    replace_atomically,
)


class View(Protocol):
    def settle(self, meta: RepoMeta) -> None:
        """Make the mount point match `meta` (read-only, or writable during a transaction)."""

    def changes(self) -> list[str]:
        """Paths written since the last publish (top-most changed path per subtree)."""

    def publish(self, scope: str) -> None:
        """Move the changes under `scope` into the published tree."""

    def discard(self, scope: str) -> None:
        """Drop the changes under `scope`."""

    def apply(self, staged: Path | None, rel: str, deletes: Sequence[str], meta: bool) -> None:
        """Publish a prepared tree at `rel` after removing `deletes` (ingest, overlay)."""

    def offline(self) -> None:
        """Take the mount point down before the published tree changes."""

    def finish(self) -> None:
        """Forget the scratch area once the last transaction is closed."""


def view(repo: Repo, meta: RepoMeta) -> View:
    return RootView(repo) if meta.mounts else PlainView(repo)


def apply_to_published(
    repo: Repo, staged: Path | None, rel: str, deletes: Sequence[str], meta: bool
) -> None:
    def change(tree: Path) -> None:
        for path in deletes:
            found = locate(tree, path)
            if found is not None:
                remove(found)
        if staged is not None:
            ensure_dirs(tree, rel)
            merge(staged, join(tree, rel), meta=meta)

    replace_atomically(repo.rdonly, change)


class RootView:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def settle(self, meta: RepoMeta) -> None:
        wanted = "overlay" if meta.transactions else "ro"
        if mounts.state(self.repo.root) == wanted:
            return
        mounts.unmount(self.repo.root)
        self.repo.root.mkdir(parents=True, exist_ok=True)
        if wanted == "ro":
            mounts.mount_readonly(self.repo.rdonly, self.repo.root)
            return
        self.repo.upper.mkdir(parents=True, exist_ok=True)
        self.repo.work.mkdir(parents=True, exist_ok=True)
        mounts.mount_overlay(self.repo.rdonly, self.repo.upper, self.repo.work, self.repo.root)

    def changes(self) -> list[str]:
        if not self.repo.upper.is_dir():
            return []
        found: list[str] = []
        self._walk("", found)
        return found

    def _walk(self, rel: str, found: list[str]) -> None:
        for name in sorted(os.listdir(join(self.repo.upper, rel))):
            child = f"{rel}/{name}" if rel else name
            st = os.lstat(self.repo.upper / child)
            if stat.S_ISDIR(st.st_mode) and self._copied_up(child, st):
                self._walk(child, found)
            else:
                found.append(child)

    def _copied_up(self, rel: str, st: os.stat_result) -> bool:
        """A directory only there because something below it changed (not itself a change)."""
        if is_opaque(self.repo.upper / rel):
            return False
        lower = locate(self.repo.rdonly, rel)
        if lower is None or not lower.is_dir() or lower.is_symlink():
            return False
        low = os.lstat(lower)
        return (low.st_mode, low.st_uid, low.st_gid) == (st.st_mode, st.st_uid, st.st_gid)

    def publish(self, scope: str) -> None:
        mounts.unmount(self.repo.root)
        source = locate(self.repo.upper, scope)
        if source is None or not lexists(source):
            return

        def change(tree: Path) -> None:
            ensure_dirs(tree, scope, like=self.repo.upper)
            merge(source, join(tree, scope))

        replace_atomically(self.repo.rdonly, change)
        if scope:
            remove(source)

    def discard(self, scope: str) -> None:
        mounts.unmount(self.repo.root)
        if scope == "":
            empty_dir(self.repo.upper)
            empty_dir(self.repo.work)
            return
        source = locate(self.repo.upper, scope)
        if source is not None:
            remove(source)

    def apply(self, staged: Path | None, rel: str, deletes: Sequence[str], meta: bool) -> None:
        mounts.unmount(self.repo.root)
        apply_to_published(self.repo, staged, rel, deletes, meta)

    def offline(self) -> None:
        mounts.unmount(self.repo.root)

    def finish(self) -> None:
        self.discard("")


class PlainView:
    def __init__(self, repo: Repo) -> None:
        self.repo = repo

    def settle(self, meta: RepoMeta) -> None:
        if not self.repo.root.is_dir():
            self.repo.root.mkdir(parents=True)
            mirror(self.repo.rdonly, self.repo.root, "")

    def changes(self) -> list[str]:
        return differences(fingerprint(self.repo.root), fingerprint(self.repo.rdonly))

    def publish(self, scope: str) -> None:
        replace_atomically(self.repo.rdonly, lambda tree: mirror(self.repo.root, tree, scope))

    def discard(self, scope: str) -> None:
        mirror(self.repo.rdonly, self.repo.root, scope)

    def apply(self, staged: Path | None, rel: str, deletes: Sequence[str], meta: bool) -> None:
        apply_to_published(self.repo, staged, rel, deletes, meta)
        for path in (*deletes, rel) if staged is not None else deletes:
            mirror(self.repo.rdonly, self.repo.root, path)

    def offline(self) -> None:
        pass

    def finish(self) -> None:
        pass


def template(root: Path, source: str, destination: str) -> None:
    """Clone `source` to `destination` inside the writable tree (hard links broken, like
    cvmfs' catalog-level CloneTree)."""
    found = locate(root, source)
    assert found is not None
    copy_tree(found, join(root, destination), hardlinks=False)
