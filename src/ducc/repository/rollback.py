"""Undo for a step that no transaction covers: note what it is about to change, and put it
back when it fails.

The directory publisher's final step (podman entry, links, metadata) writes several files
with nothing to roll it back: a failure part way (a full disk or inode table, a name the
file system refuses) would leave a public link or a podman name for an image reported
failed. `undone_on_failure()` yields a `Rollback`; each step first notes the files, links
and directories it may change; on an exception they are restored newest first (what the
step created is removed, what it replaced is written back) and the exception re-raised.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from ducc import log
from ducc.files import ensure_symlink, remove_entry, replace_file

_log = log.get("rollback")
Undo = Callable[[], None]


class Rollback:
    def __init__(self) -> None:
        self._undo: list[tuple[str, Undo]] = []

    def file(self, path: Path) -> None:
        """`path` (a regular file, a symlink, or nothing) is restored as it is now."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            self._note(path, lambda: remove_entry(path))
            return
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(path)
            self._note(path, lambda: _relink(path, target))
        elif stat.S_ISREG(info.st_mode):
            data, mode = path.read_bytes(), stat.S_IMODE(info.st_mode)
            self._note(path, lambda: replace_file(path, data, mode))

    def created(self, path: Path) -> None:
        """If `path` does not exist yet, whatever the step makes there is removed, with the
        empty parent directories made for it (up to the first that exists now)."""
        top = None
        for candidate in (path, *path.parents):
            if os.path.lexists(candidate):
                break
            top = candidate
        if top is not None:
            made = top
            self._note(made, lambda: remove_entry(made))

    def entries(self, directory: Path) -> None:
        """Entries the step adds to `directory` are removed (the others are left alone)."""
        before = set(os.listdir(directory)) if directory.is_dir() else set()

        def undo() -> None:
            if directory.is_dir():
                for name in set(os.listdir(directory)) - before:
                    remove_entry(directory / name)

        self.created(directory)
        self._note(directory, undo)

    def _note(self, path: Path, undo: Undo) -> None:
        self._undo.append((os.fspath(path), undo))

    def undo(self) -> int:
        """Undo everything noted, newest first; the number of steps that failed (logged)."""
        failed = 0
        for path, step in reversed(self._undo):
            try:
                step()
            except OSError as exc:
                failed += 1
                _log.error("rollback_failed", path=path, error=str(exc))
        self._undo.clear()
        return failed


def _relink(path: Path, target: str) -> None:
    if os.path.lexists(path) and not path.is_symlink():
        remove_entry(path)
    ensure_symlink(path, target)


@contextlib.contextmanager
def undone_on_failure(what: str) -> Iterator[Rollback]:
    """A `Rollback` whose notes are undone if the block raises (the error is re-raised)."""
    rollback = Rollback()
    try:
        yield rollback
    except BaseException as exc:
        failed = rollback.undo()
        _log.warning("step_rolled_back", step=what, error=str(exc), undo_failures=failed)
        raise
