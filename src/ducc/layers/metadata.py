"""Owner, mode, xattrs and times of a new entry, from its tar header.

Only ever applied to an inode this layer just created (or to a directory, which no two trees
share): trees are hard-link clones of each other, so touching an existing file would change
every tree at once. Owners need root; without it they are counted and skipped. xattrs are
allow-listed: `security.capability` and `user.*`; the rest (`trusted.*`, `security.selinux`)
belong to the host, not the image.
"""

from __future__ import annotations

import math
import os
import tarfile
from dataclasses import dataclass

from ducc import log

XATTR_PREFIX = "SCHILY.xattr."
_NS_MAX = (1 << 63) - 1
_SECONDS_MAX = _NS_MAX // 1_000_000_000


def xattr_allowed(name: str) -> bool:
    return name == "security.capability" or name.startswith("user.")


def xattrs_of(info: tarfile.TarInfo, layer: str) -> list[tuple[str, bytes]]:
    """The allowed xattrs of an entry, values restored to their bytes (PAX `SCHILY.xattr.*`;
    tarfile decodes binary values with surrogateescape)."""
    found: list[tuple[str, bytes]] = []
    for key, value in info.pax_headers.items():
        if not key.startswith(XATTR_PREFIX):
            continue
        name = key[len(XATTR_PREFIX) :]
        if xattr_allowed(name):
            found.append((name, value.encode("utf-8", "surrogateescape")))
        else:
            log.get("layers").debug("layer_xattr_dropped", layer=layer, entry=info.name, xattr=name)
    return found


def parse_ns(text: str) -> int:
    """A PAX time (`1700000000.123456789`, maybe negative) as integer nanoseconds."""
    seconds, _, fraction = text.partition(".")
    whole = int(seconds or "0") * 1_000_000_000
    part = int((fraction + "000000000")[:9] or "0")
    return whole - part if seconds.startswith("-") else whole + part


def times_of(info: tarfile.TarInfo) -> tuple[int, int]:
    """(atime, mtime) in nanoseconds; PAX text is parsed exactly, atime defaults to mtime."""
    pax = info.pax_headers
    if not pax and isinstance(info.mtime, int) and 0 <= info.mtime < _SECONDS_MAX:
        mtime = info.mtime * 1_000_000_000  # the common case: whole seconds, no PAX
        return mtime, mtime
    try:
        mtime = parse_ns(pax["mtime"]) if "mtime" in pax else _seconds_ns(info.mtime)
        atime = parse_ns(pax["atime"]) if "atime" in pax else mtime
    except ValueError:
        mtime = atime = _seconds_ns(info.mtime)
    return _clamp(atime), _clamp(mtime)


def _seconds_ns(seconds: float) -> int:
    """tarfile's float seconds as nanoseconds: a PAX `nan` is 0, `inf` and huge values
    clamp (int() of them raises, and a layer must not crash the run)."""
    if math.isnan(seconds):
        return 0
    if abs(seconds) > _SECONDS_MAX:
        return _NS_MAX if seconds > 0 else -_NS_MAX
    return int(seconds * 1_000_000_000)


def _clamp(ns: int) -> int:
    return max(-_NS_MAX, min(_NS_MAX, ns))


@dataclass(slots=True)
class Skipped:
    """What an unprivileged run could not apply, reported once per layer."""

    owners: int = 0
    xattrs: int = 0
    devices: int = 0


class Metadata:
    """Applies header attributes to new inodes; `privileged` decides owners and devices."""

    def __init__(self, *, privileged: bool, layer: str) -> None:
        self.privileged = privileged
        self.layer = layer
        self.skipped = Skipped()
        self._ids = (os.geteuid(), os.getegid())

    def owner_ok(self, info: tarfile.TarInfo) -> bool:
        """True when the owner should be applied (and counts it when it cannot be)."""
        if self.privileged:
            return True
        if (info.uid, info.gid) != self._ids:
            self.skipped.owners += 1
        return False

    def file(self, fd: int, info: tarfile.TarInfo) -> None:
        # chown first: it clears setuid/setgid and file capabilities; xattrs before the mode,
        # which may take away the write permission user.* xattrs need.
        if self.owner_ok(info):
            os.fchown(fd, info.uid, info.gid)
        if info.pax_headers:
            self._xattrs(fd, info)
        os.fchmod(fd, info.mode & 0o7777)
        atime, mtime = times_of(info)
        os.utime(fd, ns=(atime, mtime))

    def directory(self, path: str, info: tarfile.TarInfo, *, chmod: bool) -> None:
        """Owner, xattrs and (when `chmod`) mode; times come at the end of the layer."""
        if self.owner_ok(info):
            os.chown(path, info.uid, info.gid, follow_symlinks=False)
        if info.pax_headers:
            self._xattrs(path, info)
        if chmod:
            os.chmod(path, info.mode & 0o7777, follow_symlinks=True)

    def symlink(self, path: str, info: tarfile.TarInfo) -> None:
        if self.owner_ok(info):
            os.chown(path, info.uid, info.gid, follow_symlinks=False)
        if info.pax_headers:
            self._xattrs(path, info, symlink=True)
        atime, mtime = times_of(info)
        os.utime(path, ns=(atime, mtime), follow_symlinks=False)

    def special(self, path: str, info: tarfile.TarInfo) -> None:
        if self.owner_ok(info):
            os.chown(path, info.uid, info.gid, follow_symlinks=False)
        if info.pax_headers:
            self._xattrs(path, info)
        os.chmod(path, info.mode & 0o7777)  # the node was just made; nothing to follow
        atime, mtime = times_of(info)
        os.utime(path, ns=(atime, mtime), follow_symlinks=False)

    def _xattrs(self, target: int | str, info: tarfile.TarInfo, *, symlink: bool = False) -> None:
        for name, value in xattrs_of(info, self.layer):
            if symlink and not name.startswith("security."):
                continue  # Linux allows no user.* xattrs on symlinks
            try:
                if isinstance(target, int):
                    os.setxattr(target, name, value)
                else:
                    os.setxattr(target, name, value, follow_symlinks=False)
            except OSError as exc:
                self.skipped.xattrs += 1
                log.get("layers").debug(
                    "layer_xattr_failed", layer=self.layer, entry=info.name, error=str(exc)
                )

    def report(self) -> None:
        """One warning per kind of thing this layer could not apply."""
        skipped = self.skipped
        if skipped.owners:
            log.get("layers").warning(
                "layer_owners_skipped", layer=self.layer, entries=skipped.owners
            )
        if skipped.devices:
            log.get("layers").warning(
                "layer_devices_skipped", layer=self.layer, entries=skipped.devices
            )
        if skipped.xattrs:
            log.get("layers").warning(
                "layer_xattrs_skipped", layer=self.layer, entries=skipped.xattrs
            )
