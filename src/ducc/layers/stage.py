"""Products appear only when complete: build in a private sibling, rename into place.

`staged(final)` yields an empty directory inside `.<name>.tmp-<random>/` (mode 0700, so a
setuid file in a half-built tree is never reachable by others); success renames it to
`final` in one step, any exception removes everything. `remove_tree` deletes a tree without
following symlinks and copes with read-only directories inside.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ducc.errors import LayerError


@contextlib.contextmanager
def staged(final: Path, *, mode: int = 0o755) -> Iterator[Path]:
    """Yield an empty directory to build `final` in; publish it atomically on success.

    The yielded directory is created with `mode`; what is built inside may change that.
    Raises LayerError when `final` already exists (nothing is built then).
    """
    if os.path.lexists(final):
        raise LayerError(f"{final} already exists", hint="remove it first to rebuild it")
    final.parent.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    tree = private / final.name
    try:
        tree.mkdir()
        os.chmod(tree, mode)
        yield tree
        _publish(tree, final)
    finally:
        remove_tree(private)


def _publish(tree: Path, final: Path) -> None:
    try:
        os.rename(tree, final)
    except OSError as exc:
        if os.path.lexists(final):
            raise LayerError(
                f"{final} appeared while it was being built",
                hint="another process built the same product; use that one",
            ) from exc
        raise


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove `path` and everything below it, never following a symlink out of the tree.

    A symlink or file at `path` is unlinked; directories without write or search permission
    for us (possible when not root) are opened up before their contents go.
    """
    path = os.fspath(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        os.unlink(path)
        return
    try:
        shutil.rmtree(path)
    except PermissionError:
        _open_up(path)
        shutil.rmtree(path)


def _open_up(top: str) -> None:
    """chmod u+rwx every directory below `top` (symlinks are never followed)."""
    pending = [top]
    while pending:
        directory = pending.pop()
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode):
            continue
        if info.st_mode & 0o700 != 0o700:
            os.chmod(directory, stat.S_IMODE(info.st_mode) | 0o700)
        with os.scandir(directory) as entries:
            pending.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
