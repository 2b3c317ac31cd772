"""Mounts at the repository mount point: a read-only bind of the published tree or an overlay."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .errors import FakeError

MOUNTINFO = Path("/proc/self/mountinfo")
# Plain overlay semantics: whole copy-up, whiteouts as 0:0 devices, no redirects.
OVERLAY_OPTIONS = "index=off,metacopy=off,redirect_dir=off"


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, filesystem type, per-mount options) of every mount, in mount order."""
    result = []
    for line in MOUNTINFO.read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        result.append((_unescape(fields[4]), fields[separator + 1], fields[5]))
    return result


def state(target: Path) -> str:
    """'overlay', 'ro' (read-only bind), 'other' or 'none' for the top mount at `target`."""
    found = [m for m in mounts() if m[0] == str(target)]
    if not found:
        return "none"
    _, fstype, options = found[-1]
    if fstype == "overlay":
        return "overlay"
    return "ro" if "ro" in options.split(",") else "other"


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise FakeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")


def unmount(target: Path) -> None:
    """Unmount everything stacked at `target`; a busy mount point fails loudly."""
    while state(target) != "none":
        done = subprocess.run(["umount", str(target)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise FakeError(
                f"cannot unmount {target}: {done.stderr.strip()} (open files or a working "
                "directory inside the repository; cvmfs_server refuses to publish then too)"
            )


def mount_readonly(source: Path, target: Path) -> None:
    _run(["mount", "--bind", str(source), str(target)])
    _run(["mount", "-o", "remount,bind,ro", str(target)])


def mount_overlay(lowers: list[Path], upper: Path, work: Path, target: Path) -> None:
    """`lowers` top first (overlayfs' order)."""
    lower = ":".join(str(path) for path in lowers)
    options = f"lowerdir={lower},upperdir={upper},workdir={work},{OVERLAY_OPTIONS}"
    try:
        _run(["mount", "-t", "overlay", "overlay", "-o", options, str(target)])
    except FakeError as error:
        raise FakeError(
            f"{error.message}\n(the filesystem of FAKE_CVMFS_STATE must be able to hold an "
            "overlayfs upper dir, e.g. ext4, xfs or tmpfs; or set FAKE_CVMFS_NO_MOUNTS=1)"
        ) from None


def unmount_under(prefix: Path) -> list[str]:
    """Unmount every mount at or below `prefix`, deepest first (lazily if busy)."""
    root = str(prefix.resolve())
    found = [m[0] for m in mounts() if m[0] == root or m[0].startswith(root + "/")]
    for point in sorted(found, key=len, reverse=True):
        done = subprocess.run(["umount", point], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return found
