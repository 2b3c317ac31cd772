"""How the repository looks at `$PREFIX/<repo>`: mounts as root, a plain directory otherwise.

RootView: a read-only bind mount of the published tree outside transactions and an overlayfs
(lower = published tree, upper = scratch) while any transaction is open; a template's clone is
a second lower layer above the published tree, so it costs the upper dir nothing (cvmfs clones
at catalog level). PlainView: a plain directory compared against the published tree at every
call, so writes outside a transaction are found at the next call.

Publishing follows cvmfs: every hard link is broken up, extended attributes are dropped (no
CVMFS_INCLUDE_XATTRS), and names starting with `.wh.` in the upper dir are taken for AUFS
whiteouts (see tree.merge).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from . import mounts
from .errors import FakeError
from .fingerprint import differences, fingerprint
from .paths import join, lexists, locate, under
from .state import Repo, RepoMeta
from .tree import (
    WHITEOUT_PREFIX,
    copy_tree,
    empty_dir,
    ensure_dirs,
    is_opaque,
    is_whiteout,
    link_tree,
    merge,
    mirror,
    remove,
    replace_atomically,
)

Usage = tuple[int, int]  # regular files, bytes


class View(Protocol):
    def settle(self, meta: RepoMeta) -> None:
        """Make the mount point match `meta` (read-only, or writable during a transaction)."""

    def changes(self) -> list[str]:
        """Paths written since the last publish (top-most changed path per subtree)."""

    def publish(self, scope: str, template: str | None) -> None:
        """Move the changes under `scope` (and the clone at `template`) into the published
        tree."""

    def discard(self, scope: str) -> None:
        """Drop the changes under `scope`."""

    def clone(self, source: str, destination: str) -> None:
        """A template transaction's catalog-level clone of `source` at `destination`."""

    def usage(self, scope: str, template: tuple[str, str] | None) -> Usage:
        """What publishing `scope` makes cvmfs process: regular files and bytes written in
        the transaction (per path), clones of a template not counted."""

    def check_publishable(self, scope: str) -> None:
        """Fail like cvmfs where the changes would make it crash."""

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
        lowers = [self.repo.rdonly]
        if self.repo.templates.is_dir() and os.listdir(self.repo.templates):
            lowers.insert(0, self.repo.templates)
        mounts.mount_overlay(lowers, self.repo.upper, self.repo.work, self.repo.root)

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

    def publish(self, scope: str, template: str | None) -> None:
        mounts.unmount(self.repo.root)
        source = locate(self.repo.upper, scope)
        changed = source is not None and lexists(source)
        clone = join(self.repo.templates, template) if template is not None else None

        def change(tree: Path) -> None:
            if clone is not None and template is not None:
                copy_tree(clone, join(tree, template), hardlinks=False)
            if source is not None and changed:
                ensure_dirs(tree, scope, like=self.repo.upper)
                merge(source, join(tree, scope), publishing=True)

        if changed or clone is not None:
            replace_atomically(self.repo.rdonly, change)
        if clone is not None:
            remove(clone)
        if scope and source is not None:
            remove(source)

    def discard(self, scope: str) -> None:
        mounts.unmount(self.repo.root)
        if scope == "":
            empty_dir(self.repo.upper)
            empty_dir(self.repo.work)
            remove(self.repo.templates)
            return
        for tree in (self.repo.upper, self.repo.templates):
            found = locate(tree, scope)
            if found is not None:
                remove(found)

    def clone(self, source: str, destination: str) -> None:
        """Hard links into the templates layer: free here; broken up when published."""
        mounts.unmount(self.repo.root)
        self.repo.templates.mkdir(exist_ok=True)
        ensure_dirs(self.repo.templates, destination, like=self.repo.rdonly)
        found = locate(self.repo.rdonly, source)
        assert found is not None
        link_tree(found, join(self.repo.templates, destination))

    def usage(self, scope: str, template: tuple[str, str] | None) -> Usage:
        found = locate(self.repo.upper, scope)
        if found is None or not lexists(found):
            return 0, 0
        return regular_usage(found)

    def check_publishable(self, scope: str) -> None:
        """cvmfs 2.11.5 crashes ("Killed", Synchronization failed) when the upper dir deletes
        or makes opaque a directory whose published content holds a `.wh.*` name."""
        found = locate(self.repo.upper, scope)
        if found is None or not lexists(found):
            return
        for dirpath, dirnames, filenames in os.walk(found):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                st = os.lstat(path)
                if not (is_whiteout(st) or (stat.S_ISDIR(st.st_mode) and is_opaque(path))):
                    continue
                rel = os.path.relpath(path, self.repo.upper)
                for lower in (self.repo.templates, self.repo.rdonly):
                    below = locate(lower, rel)
                    if below is not None and below.is_dir() and _has_whiteout_names(below):
                        raise FakeError(
                            f"Synchronization failed: /{rel} replaces a directory holding "
                            f"'{WHITEOUT_PREFIX}*' names (cvmfs_swissknife sync crashes here)"
                        )

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

    def publish(self, scope: str, template: str | None) -> None:
        replace_atomically(self.repo.rdonly, lambda tree: mirror(self.repo.root, tree, scope))
        mirror(self.repo.rdonly, self.repo.root, scope)  # what readers see: links broken up

    def discard(self, scope: str) -> None:
        mirror(self.repo.rdonly, self.repo.root, scope)

    def clone(self, source: str, destination: str) -> None:
        found = locate(self.repo.root, source)
        assert found is not None
        copy_tree(found, join(self.repo.root, destination), hardlinks=False)

    def usage(self, scope: str, template: tuple[str, str] | None) -> Usage:
        """Regular files that differ from the published tree, less those of a template's
        clone that are unchanged copies of their source."""
        now, before = fingerprint(self.repo.root), fingerprint(self.repo.rdonly)
        files = size = 0
        for rel in differences(now, before):
            entry = now.get(rel)
            if entry is None or entry[0] != "file" or not under(rel, scope):
                continue
            if template is not None and under(rel, template[1]):
                origin = template[0] + rel[len(template[1]) :]
                if before.get(origin) == entry:
                    continue
            files, size = files + 1, size + entry[2]
        return files, size

    def check_publishable(self, scope: str) -> None:
        """No `.wh.*` names in this mode's changes: cvmfs takes them for whiteouts, which
        the mount-less fake does not model."""
        now, before = fingerprint(self.repo.root), fingerprint(self.repo.rdonly)
        for rel in differences(now, before):
            if under(rel, scope) and rel.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
                raise FakeError(
                    f"Synchronization failed: /{rel}: names starting with '{WHITEOUT_PREFIX}' "
                    "are whiteouts to cvmfs (not modelled without mounts)"
                )

    def apply(self, staged: Path | None, rel: str, deletes: Sequence[str], meta: bool) -> None:
        apply_to_published(self.repo, staged, rel, deletes, meta)
        for path in (*deletes, rel) if staged is not None else deletes:
            mirror(self.repo.rdonly, self.repo.root, path)

    def offline(self) -> None:
        pass

    def finish(self) -> None:
        pass


def regular_usage(top: Path) -> Usage:
    """Regular files below `top` and their bytes, counted per path."""
    files = size = 0
    for dirpath, _, filenames in os.walk(top):
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(st.st_mode):
                files, size = files + 1, size + st.st_size
    return files, size


def _has_whiteout_names(top: Path) -> bool:
    for _, dirnames, filenames in os.walk(top):
        if any(name.startswith(WHITEOUT_PREFIX) for name in dirnames + filenames):
            return True
    return False
