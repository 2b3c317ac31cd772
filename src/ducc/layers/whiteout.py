"""Whiteouts and opaque directories (OCI image-spec `layer.md`, "Whiteouts").

A whiteout hides only what lower layers put there: whatever this layer itself created (the
`Upper` set, every entry and its ancestors) survives, whether the marker comes before or
after it in the tar. An opaque marker clears the lower content of its directory the same
way, "regardless of the ordering in which the whiteout file was encountered".
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from ducc.layers.stage import remove_tree


class Upper:
    """Real relative paths created by the current layer, with all their ancestors."""

    def __init__(self) -> None:
        self._paths: set[str] = set()

    def add(self, rel: str) -> None:
        paths = self._paths
        while rel and rel not in paths:
            paths.add(rel)
            rel = rel.rpartition("/")[0]

    def __contains__(self, rel: str) -> bool:
        return rel in self._paths


class Whiteouts:
    """Removes lower content under `root`; `changed` is called when a directory or a symlink
    went away (resolved parents may be stale)."""

    def __init__(self, root: str, upper: Upper, changed: Callable[[], None]) -> None:
        self.root = root
        self.upper = upper
        self._changed = changed

    def whiteout(self, rel: str) -> bool:
        """Hide the lower `rel` (a `.wh.<name>` entry); True when something was removed."""
        return self._remove_lower(rel)

    def opaque(self, directory: str) -> bool:
        """Hide every lower child of `directory` (a `.wh..wh..opq` entry)."""
        removed = False
        for name in _names(self._path(directory)):
            removed |= self._remove_lower(_join(directory, name))
        return removed

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _remove_lower(self, rel: str) -> bool:
        path = self._path(rel)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False  # nothing to hide (OCI: ignore whiteouts of missing paths)
        if rel not in self.upper:
            return self._remove(path, info)
        if not stat.S_ISDIR(info.st_mode):
            return False
        removed = False
        for name in _names(path):
            removed |= self._remove_lower(_join(rel, name))
        return removed

    def _remove(self, path: str, info: os.stat_result) -> bool:
        if stat.S_ISDIR(info.st_mode):
            remove_tree(path)
            self._changed()
        else:
            os.unlink(path)
            if stat.S_ISLNK(info.st_mode):
                self._changed()
        return True


def _names(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [entry.name for entry in entries]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name
