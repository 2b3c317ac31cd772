"""File trees: copy with metadata and hard links, remove, and merge an overlay upper dir."""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

from .paths import ancestors, join

OPAQUE = "trusted.overlay.opaque"
OVERLAY_XATTR_PREFIX = "trusted.overlay."
WHITEOUT_PREFIX = ".wh."  # AUFS whiteouts: cvmfs reads upper names like this as deletions
Links = dict[tuple[int, int], Path]


def is_root() -> bool:
    return os.geteuid() == 0


def remove(path: Path) -> None:
    """Remove whatever is at `path` (a directory recursively; a symlink, not its target)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def empty_dir(path: Path) -> None:
    remove(path)
    path.mkdir(parents=True)


def set_meta(path: Path, st: os.stat_result) -> None:
    """Owner (when root), mode and times of `st` onto `path`; symlinks keep their own mode."""
    if is_root():
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def ensure_dirs(root: Path, rel: str, like: Path | None = None) -> None:
    """Make every ancestor of `rel` a real directory, replacing files and symlinks in the way.

    New directories copy the metadata of the same path under `like` when it exists there.
    """
    for above in ancestors(rel):
        path = root / above
        if path.is_dir() and not path.is_symlink():
            continue
        remove(path)
        path.mkdir()
        source = like / above if like is not None else None
        if source is not None and source.is_dir() and not source.is_symlink():
            set_meta(path, os.lstat(source))


def copy_node(src: Path, dst: Path, st: os.stat_result, links: Links | None) -> None:
    """Copy one non-directory node; a second name of an already copied inode becomes a link
    (unless `links` is None: then every name gets its own copy)."""
    key = (st.st_dev, st.st_ino)
    if links is not None and stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and key in links:
        os.link(links[key], dst)
        return
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
        if links is not None:
            links[key] = dst
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    else:
        os.mknod(dst, st.st_mode, st.st_rdev)
    set_meta(dst, st)


def copy_tree(src: Path, dst: Path, *, hardlinks: bool = True) -> None:
    """`cp -a src dst`: any node type, with metadata; dst must not exist.

    Hard links within `src` stay hard links within the copy unless `hardlinks` is False.
    """
    _copy(src, dst, {} if hardlinks else None)


def _copy(src: Path, dst: Path, links: Links | None) -> None:
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        copy_node(src, dst, st, links)
        return
    dst.mkdir()
    for child in sorted(os.listdir(src)):
        _copy(src / child, dst / child, links)
    set_meta(dst, st)


def mirror(src_root: Path, dst_root: Path, rel: str) -> None:
    """Make `dst_root/rel` a copy of `src_root/rel` (or absent when that is absent); hard
    links are broken up, as a cvmfs publish breaks them."""
    src, dst = join(src_root, rel), join(dst_root, rel)
    if rel == "":
        for child in os.listdir(dst):
            remove(dst / child)
        for child in sorted(os.listdir(src)):
            _copy(src / child, dst / child, None)
        set_meta(dst, os.lstat(src))
        return
    remove(dst)
    if os.path.lexists(src):
        ensure_dirs(dst_root, rel, like=src_root)
        copy_tree(src, dst, hardlinks=False)


def is_whiteout(st: os.stat_result) -> bool:
    """An overlayfs whiteout: a character device 0:0 (Documentation/filesystems/overlayfs)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def strip_xattrs(path: Path, *, everything: bool) -> None:
    """Drop overlayfs bookkeeping (origin, ...) from a node moved out of an upper dir, or
    `everything`: all extended attributes."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return
    for name in names:
        if everything or name.startswith(OVERLAY_XATTR_PREFIX):
            os.removexattr(path, name, follow_symlinks=False)


def merge(src: Path, dst: Path, *, meta: bool = True, publishing: bool = False) -> None:
    """Move the tree `src` onto the published tree `dst`: an ingest's staged tree, or
    (`publishing`) a transaction's overlay upper dir, with cvmfs' publish semantics.

    Whiteouts delete the lower path, opaque directories replace the lower directory's
    contents, everything else replaces what is below. Hard links are broken up (a file
    with several names is copied, not moved), as cvmfs breaks them. Publishing also drops
    extended attributes (cvmfs keeps none without CVMFS_INCLUDE_XATTRS) and takes a name
    `.wh.X` of any type for a whiteout of X: X is deleted, `.wh.X` never created.
    `meta=False` leaves the metadata of an existing `dst` alone.
    """
    st = os.lstat(src)
    if publishing and dst.name.startswith(WHITEOUT_PREFIX):
        hidden = dst.with_name(dst.name[len(WHITEOUT_PREFIX) :])
        if os.path.lexists(hidden):
            remove(hidden)
        else:
            print(f"[WARNING] '{hidden}' should be deleted, but was not found in repository.")
        return
    if is_whiteout(st):
        remove(dst)
        return
    if not stat.S_ISDIR(st.st_mode):
        remove(dst)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            shutil.copyfile(src, dst, follow_symlinks=False)
            set_meta(dst, st)
        else:
            os.rename(src, dst)
        if is_root():
            strip_xattrs(dst, everything=publishing)
        return
    existed = dst.is_dir() and not dst.is_symlink()
    if not existed or is_opaque(src):
        remove(dst)
        dst.mkdir()
    for child in sorted(os.listdir(src)):
        merge(src / child, dst / child, publishing=publishing)
    if meta or not existed:
        set_meta(dst, st)


def link_tree(src: Path, dst: Path) -> None:
    """A copy of `src` whose directories are new and whose other nodes are hard links to
    the originals (`cp -al`): cheap, and changing names in it leaves `src` alone."""
    st = os.lstat(src)
    if not stat.S_ISDIR(st.st_mode):
        os.link(src, dst, follow_symlinks=False)
        return
    dst.mkdir()
    for child in os.listdir(src):
        link_tree(src / child, dst / child)
    set_meta(dst, st)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(first: Path, second: Path) -> None:
    """Swap two paths in one step (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    ):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), os.fspath(first), None, os.fspath(second))


def replace_atomically(tree: Path, change: Callable[[Path], None]) -> None:
    """Apply `change` to a hard-link copy of `tree`, then swap the copy in with one rename,
    as cvmfs commits a publish with one new root catalog: a publish killed at any moment
    leaves the old tree whole, or the new one."""
    following = tree.with_name(f"{tree.name}.next")
    remove(following)  # left by a publish killed before its swap
    link_tree(tree, following)
    change(following)
    exchange(following, tree)
    remove(following)
