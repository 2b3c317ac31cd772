"""Compare directory trees as a client sees them: names, types, modes, owners, contents,
symlink targets, device numbers (and xattrs where the store keeps them), and a flat tree
against `umoci unpack` of the same image, Apptainer's additions aside.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

from ducc.publish.base import CATALOG_MARKER
from ducc.repository.apptainer import BIND_FILES, META, MOUNT_POINTS
from ducc.repository.apptainer_scripts import ROOT_LINKS

Description = tuple[object, ...]
# What ducc adds to a flat tree for Apptainer (and CernVM-FS): allowed beyond the image.
ADDED_TOP = {META, CATALOG_MARKER, *ROOT_LINKS, *MOUNT_POINTS, *BIND_FILES}


def describe(root: Path, *, xattrs: bool = True) -> dict[str, Description]:
    """Every path below `root` (relative) with what a client can observe of it; a symlink's
    permission bits are left out (CernVM-FS reports 0644, Linux 0777: neither is used)."""
    found: dict[str, Description] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            mode = info.st_mode
            if stat.S_ISREG(mode):
                body: object = _sha256(path)
            elif stat.S_ISLNK(mode):
                body, mode = os.readlink(path), stat.S_IFLNK
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                body = (os.major(info.st_rdev), os.minor(info.st_rdev))
            else:
                body = None
            attrs: tuple[tuple[str, bytes], ...] = ()
            if xattrs:
                attrs = tuple(
                    sorted(
                        (n, os.getxattr(path, n, follow_symlinks=False))
                        for n in os.listxattr(path, follow_symlinks=False)
                    )
                )
            found[os.path.relpath(path, root)] = (mode, info.st_uid, info.st_gid, body, attrs)
    return found


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def umoci_rootfs(layout_ref: str, bundle: Path) -> Path:
    """`umoci unpack` of `layout:tag` into `bundle`; its root filesystem."""
    subprocess.run(
        ["umoci", "unpack", "--image", layout_ref, os.fspath(bundle)],
        check=True,
        capture_output=True,
    )
    return bundle / "rootfs"


def flat_differences(flat: Path, reference: Path, *, xattrs: bool = False) -> list[str]:
    """How the flat tree `flat` differs from the image's root filesystem `reference` (e.g.
    `umoci unpack`): every reference path must be there unchanged; what is more must be one
    of Apptainer's additions. Hard links are not compared (CernVM-FS breaks them up)."""
    ours, theirs = describe(flat, xattrs=xattrs), describe(reference, xattrs=xattrs)
    problems = [f"missing: {p}" for p in sorted(set(theirs) - set(ours))]
    problems += [f"differs: {p}" for p in sorted(theirs) if p in ours and ours[p] != theirs[p]]
    problems += [f"extra: {p}" for p in sorted(set(ours) - set(theirs)) if not _added(p)]
    return problems


def _added(path: str) -> bool:
    return path in ADDED_TOP or path.startswith(f"{META}/")
