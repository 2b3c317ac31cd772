"""Unpack an ingest tar into a staging tree, the way `cvmfs_server ingest` (2.11.5) reads it.

Entries keep the tar's owner, mode and mtime; directories the tar only implies, and the base
directory, belong to the repository owner. A hard link becomes a separate copy of its
target, which must be an entry of the same tar: a link to anything else makes cvmfs' ingest
fail (there is no `--tolerate-missing-hardlinks` in 2.11.5). Stricter than the real
ingester where a test could otherwise write outside the repository: absolute member names
and '..' are refused, and nothing on the way is a followed symlink.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import FakeError
from .paths import ancestors, clean, join, locate
from .tree import copy_node, ensure_dirs, is_root, remove

CATALOG = ".cvmfscatalog"
CATALOG_MODE = 0o664  # as `ingest --catalog` creates it


@dataclass(frozen=True, slots=True)
class Ownership:
    """The repository owner: of implied directories and the catalog marker."""

    uid: int
    gid: int


def member_path(name: str) -> str:
    if name.startswith("/") or ".." in name.split("/"):
        raise FakeError(f"refusing tar member {name!r}: absolute or '..' path")
    return clean(name)


@dataclass(slots=True)
class Extractor:
    dest: Path
    ownership: Ownership
    dirs: list[tuple[str, tarfile.TarInfo]] = field(default_factory=list)
    implicit: list[str] = field(default_factory=list)
    links: list[tuple[str, tarfile.TarInfo]] = field(default_factory=list)
    root_entry: bool = False

    def run(self, stream: IO[bytes]) -> None:
        self.dest.mkdir(parents=True)
        try:
            self._read(stream)
        except tarfile.TarError as error:  # like libarchive: plain (uncompressed) tar only
            raise FakeError(f"Fatal error in reading the archive: {error}") from None
        for rel, member in self.links:
            self._link(rel, member)
        self._own_implicit()
        for rel, member in sorted(self.dirs, key=lambda d: d[0].count("/"), reverse=True):
            self._meta(join(self.dest, rel), member)

    def _own_implicit(self) -> None:
        """Directories the tar only implies (and the base dir) belong to the chosen owner."""
        uid, gid = self.ownership.uid, self.ownership.gid
        if not is_root():
            return
        for rel in ("", *self.implicit):
            path = locate(self.dest, rel)
            if path is not None and path.is_dir() and not path.is_symlink():
                os.chown(path, uid, gid)

    def _read(self, stream: IO[bytes]) -> None:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                rel = member_path(member.name)
                if member.islnk():
                    self.links.append((rel, member))
                else:
                    self._place(rel, member, archive)

    def _place(self, rel: str, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        if rel == "":
            if not member.isdir():
                raise FakeError(f"tar member {member.name!r} is the base directory but not a dir")
            self.root_entry = True
            self.dirs.append((rel, member))
            return
        if rel.rpartition("/")[2] == CATALOG and not member.isreg():
            raise FakeError(f"Found entity called as a catalog marker '{rel}' that is not a file")
        self.implicit.extend(a for a in ancestors(rel) if not os.path.lexists(self.dest / a))
        ensure_dirs(self.dest, rel)
        path = self.dest / rel
        if not (member.isdir() and path.is_dir() and not path.is_symlink()):
            remove(path)
        self._create(path, member, archive)
        if member.isdir():
            self.dirs.append((rel, member))
        else:
            self._meta(path, member)

    def _create(self, path: Path, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        if member.isdir():
            path.mkdir(exist_ok=True)
        elif member.isreg():
            source = archive.extractfile(member)
            assert source is not None
            with source, path.open("wb") as target:
                shutil.copyfileobj(source, target)
        elif member.issym():
            os.symlink(member.linkname, path)
        elif member.ischr() or member.isblk() or member.isfifo():
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else 0
            kind = kind or stat.S_IFIFO
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        else:
            raise FakeError(f"Fatal error found unexpected file: {member.name!r}")

    def _meta(self, path: Path, member: tarfile.TarInfo) -> None:
        if is_root():
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if not member.issym():
            os.chmod(path, member.mode & 0o7777)
        mtime = int(member.mtime * 1_000_000_000)
        os.utime(path, ns=(mtime, mtime), follow_symlinks=False)

    def _link(self, rel: str, member: tarfile.TarInfo) -> None:
        """Hard links are resolved last, to a copy of an entry of the same tar."""
        target_rel = member_path(member.linkname)
        ensure_dirs(self.dest, rel)
        path = join(self.dest, rel)
        remove(path)
        target = locate(self.dest, target_rel)
        if target is None or not os.path.lexists(target):
            raise FakeError(
                f"Synchronization failed: hard link {member.name!r} -> {member.linkname!r}: "
                "the target is not in the tar"
            )
        st = os.lstat(target)
        if stat.S_ISDIR(st.st_mode):
            raise FakeError(f"hard link {member.name!r} points at a directory")
        copy_node(target, path, st, None)

    def catalog(self) -> None:
        """`--catalog`: an empty `.cvmfscatalog` at the base directory."""
        marker = self.dest / CATALOG
        if not os.path.lexists(marker):
            marker.touch()
            os.chmod(marker, CATALOG_MODE)
            if is_root():
                os.chown(marker, self.ownership.uid, self.ownership.gid)
