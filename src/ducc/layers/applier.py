"""The applier behind `apply.apply_layer`: one layer's entries applied to one tree, with
OCI changeset semantics or literally; a twin applier takes a second tree along in the same
pass. Every write stays inside the tree (paths.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ducc.errors import HostileLayer
from ducc.interrupts import INTERRUPTS
from ducc.layers.metadata import Metadata, times_of, xattr_allowed
from ducc.layers.paths import (
    ResolveError,
    Resolver,
    open_file,
    read_symlink,
    unresolved_link,
)
from ducc.layers.stage import remove_tree
from ducc.layers.stats import ApplyMode, ApplyStats, Counts
from ducc.layers.stream import LayerDigests
from ducc.layers.tarstream import OPAQUE, WHITEOUT, Entry, Kind, TarReader
from ducc.layers.whiteout import Upper, Whiteouts

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DEVICES = {Kind.CHAR: stat.S_IFCHR, Kind.BLOCK: stat.S_IFBLK, Kind.FIFO: stat.S_IFIFO}


@dataclass(frozen=True, slots=True)
class _Copy:
    """A twin's new file that a regular file's data also goes to."""

    applier: Applier
    fd: int


class Applier:
    def __init__(
        self, root: str, mode: ApplyMode, layer: str, lower: Path | None, privileged: bool | None
    ) -> None:
        self.root = root
        self.changeset = mode is ApplyMode.CHANGESET
        self.layer = layer
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self.metadata = Metadata(privileged=self.privileged, layer=layer)
        self._handlers: dict[Kind, Callable[[Entry, str, TarReader], None]] = {
            Kind.DIRECTORY: self._directory,
            Kind.SYMLINK: self._symlink,
            Kind.HARDLINK: self._hardlink,
            Kind.CHAR: self._special,
            Kind.BLOCK: self._special,
            Kind.FIFO: self._special,
        }
        self.resolver = Resolver(root, seen=self._seen, made=self._made)
        self.lower = Resolver(os.fspath(lower)) if lower is not None else None
        self.upper = Upper()
        self.whiteouts = Whiteouts(root, self.upper, self._forget)
        self.removed = False  # a directory or symlink of the tree went away in this layer
        self.counts = Counts()
        self.entry = ""
        self.current: Entry | None = None
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.dir_modes: dict[str, int] = {}  # unprivileged: final modes of opened-up dirs
        self._seen("", os.lstat(root))

    def _forget(self) -> None:
        """A directory or a symlink went away: resolved parents may be stale, and a directory
        whose times are kept may be gone."""
        self.resolver.forget()
        self.removed = True

    def _seen(self, rel: str, info: os.stat_result) -> None:
        """An existing directory met while resolving: keep its times (and, unprivileged,
        open it up) so that this layer leaves it as it found it unless an entry says so."""
        self.dir_times.setdefault(rel, (info.st_atime_ns, info.st_mtime_ns))
        if not self.privileged and info.st_mode & 0o700 != 0o700:
            self.dir_modes.setdefault(rel, stat.S_IMODE(info.st_mode))
            os.chmod(self.resolver.path(rel), stat.S_IMODE(info.st_mode) | 0o700)

    def _made(self, rel: str) -> None:
        """A parent the layer did not declare: it gets the times of the entry that needed
        it, so that the same layer always makes the same tree."""
        if self.current is not None:
            self.dir_times.setdefault(rel, times_of(self.current.info))

    def refuse(self, reason: str) -> HostileLayer:
        return HostileLayer(self.layer, self.entry, reason)

    def run(self, reader: TarReader, twin: Applier | None = None) -> None:
        """Every entry of `reader`; with a `twin` (a CHANGESET applier of another tree),
        each entry there too: a regular file's data, read once, is written to both."""
        for entry in reader:
            INTERRUPTS.check()  # a signal stops a long layer between entries
            copy = twin.copy_for(entry, reader) if twin is not None else None
            self.apply(entry, reader, copy)
        self._finish_directories()
        if twin is not None:
            twin.finish_directories()

    def apply(self, entry: Entry, reader: TarReader, copy: _Copy | None = None) -> None:
        """One entry; a regular file's data goes to `copy` too."""
        self._start(entry)
        try:
            if not entry.name:
                self._directory(entry, "", reader)
            elif self.changeset and entry.base.startswith(WHITEOUT):
                self._whiteout(entry)
            else:
                rel = self._place(entry)
                if entry.kind is Kind.FILE:
                    self._file(entry, rel, reader, copy)
                else:
                    self._handlers[entry.kind](entry, rel, reader)
        except ResolveError as exc:
            raise self.refuse(str(exc)) from None

    def copy_for(self, entry: Entry, reader: TarReader) -> _Copy | None:
        """As a twin: a regular file is created here and the file its data must also go to
        returned (the other applier reads the data); any other entry is applied now."""
        if entry.kind is not Kind.FILE or not entry.name or entry.base.startswith(WHITEOUT):
            self.apply(entry, reader)
            return None
        self._start(entry)
        try:
            rel = self._place(entry)
        except ResolveError as exc:
            raise self.refuse(str(exc)) from None
        return _Copy(self, self._new_file(rel))

    def _start(self, entry: Entry) -> None:
        self.entry = entry.info.name
        self.current = entry

    def finish_directories(self) -> None:
        self._finish_directories()

    def _place(self, entry: Entry) -> str:
        parent = self.resolver.directory(entry.parent, create=True)
        if parent is None:  # pragma: no cover - create=True always yields a directory
            raise self.refuse("parent directory missing")
        rel = f"{parent}/{entry.base}" if parent else entry.base
        if self.changeset:
            self.upper.add(rel)
        return rel

    # -- entries -----------------------------------------------------------------------

    def _file(self, entry: Entry, rel: str, reader: TarReader, copy: _Copy | None = None) -> None:
        """A new file with the entry's data and attributes; the data goes to `copy` too."""
        fds = [self._new_file(rel)]
        if copy is not None:
            fds.append(copy.fd)
        try:
            size = reader.copy_to(*fds)
            self.metadata.file(fds[0], entry.info)
            if copy is not None:
                copy.applier.metadata.file(copy.fd, entry.info)
        finally:
            for fd in fds:
                os.close(fd)
        self.counts.bytes += size
        self.counts.files += 1
        if copy is not None:
            copy.applier.counts.bytes += size
            copy.applier.counts.files += 1

    def _directory(self, entry: Entry, rel: str, reader: TarReader) -> None:
        path = self.resolver.path(rel)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                self._clear(rel)
                os.mkdir(path, 0o700)
        mode = entry.info.mode & 0o7777
        defer = not self.privileged and mode & 0o700 != 0o700
        self.metadata.directory(path, entry.info, chmod=not defer)
        if defer:
            self.dir_modes[rel] = mode
            os.chmod(path, mode | 0o700)
        self.dir_times[rel] = times_of(entry.info)
        if rel:
            self.resolver.learn(entry.name, rel)
        self.counts.directories += 1

    def _symlink(self, entry: Entry, rel: str, reader: TarReader) -> None:
        path = self._create(rel, lambda path: os.symlink(entry.link, path))
        self.metadata.symlink(path, entry.info)
        self.counts.symlinks += 1

    def _hardlink(self, entry: Entry, rel: str, reader: TarReader) -> None:
        source = self._link_source(entry.link)
        if source == rel:
            return  # a link to itself: already there
        if source is None:
            if self.changeset or self.lower is None:
                raise self.refuse(f"hard link target {entry.link!r} does not exist")
            self._copy_from_lower(entry, rel, self.lower)
            return
        source_path = self.resolver.path(source)
        try:
            self._create(rel, lambda path: os.link(source_path, path, follow_symlinks=False))
        except FileNotFoundError:
            raise self.refuse(f"hard link target {entry.link!r} went away") from None
        self.counts.hardlinks += 1

    def _special(self, entry: Entry, rel: str, reader: TarReader) -> None:
        if entry.kind is not Kind.FIFO and not self.privileged:
            self.metadata.skipped.devices += 1
            return
        info = entry.info
        device = os.makedev(info.devmajor, info.devminor)
        path = self._create(rel, lambda p: os.mknod(p, _DEVICES[entry.kind] | 0o600, device))
        self.metadata.special(path, info)
        self.counts.specials += 1

    def _whiteout(self, entry: Entry) -> None:
        parent = self.resolver.directory(entry.parent, create=False)
        if parent is None or (entry.base.startswith(WHITEOUT * 2) and entry.base != OPAQUE):
            return  # nothing below to hide, or aufs metadata (`.wh..wh.plnk`)
        if entry.base == OPAQUE:
            self.whiteouts.opaque(parent)
            self.counts.opaques += 1
            return
        name = entry.base[len(WHITEOUT) :]
        self.whiteouts.whiteout(f"{parent}/{name}" if parent else name)
        self.counts.whiteouts += 1

    # -- helpers -----------------------------------------------------------------------

    def _create(self, rel: str, make: Callable[[str], object]) -> str:
        """Create `rel` with `make(path)`; what is in the way is removed first (unlink, then
        create: an existing inode may be shared with other trees and is never reused)."""
        path = self.resolver.path(rel)
        try:
            make(path)
        except FileExistsError:
            self._clear(rel)
            make(path)
        return path

    def _new_file(self, rel: str) -> int:
        """A new regular file at `rel`, open for writing (the same unlink-then-create)."""
        path = self.resolver.path(rel)
        try:
            return os.open(path, _NEW_FILE, 0o600)
        except FileExistsError:
            self._clear(rel)
            return os.open(path, _NEW_FILE, 0o600)

    def _clear(self, rel: str) -> None:
        path = self.resolver.path(rel)
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            remove_tree(path)
            self._forget()
        else:
            os.unlink(path)
            if stat.S_ISLNK(info.st_mode):
                self._forget()

    def _link_source(self, link: str) -> str | None:
        """The real path of a hard-link target inside the tree (its final component is not
        followed), or None when it does not exist."""
        logical, _, base = link.rpartition("/")
        parent = self.resolver.directory(logical, create=False)
        if parent is None:
            return None
        rel = f"{parent}/{base}" if parent else base
        try:
            info = os.lstat(self.resolver.path(rel))
        except FileNotFoundError:
            return None
        if stat.S_ISDIR(info.st_mode):
            raise self.refuse(f"hard link to a directory ({link!r})")
        return rel

    def _copy_from_lower(self, entry: Entry, rel: str, lower: Resolver) -> None:
        """LITERAL: a hard link to a file of a lower layer becomes a copy of that file, one to
        a lower symlink a symlink with its target (never followed), as the flat tree has it."""
        fd_in = open_file(lower, entry.link)
        if fd_in is None:
            link = read_symlink(lower, entry.link)
            if link is None:
                raise self.refuse(unresolved_link(lower, entry.link))
            self._copy_symlink(rel, *link)
            return
        try:
            self._copy_file(fd_in, rel)
        finally:
            os.close(fd_in)

    def _copy_symlink(self, rel: str, target: str, info: os.stat_result) -> None:
        path = self._create(rel, lambda path: os.symlink(target, path))
        if self.privileged:
            os.chown(path, info.st_uid, info.st_gid, follow_symlinks=False)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
        self.counts.symlinks += 1

    def _copy_file(self, fd_in: int, rel: str) -> None:
        info = os.fstat(fd_in)
        fd = self._new_file(rel)
        try:
            offset = 0
            while offset < info.st_size:
                sent = os.sendfile(fd, fd_in, offset, info.st_size - offset)
                if not sent:
                    break
                offset += sent
            if self.privileged:
                os.fchown(fd, info.st_uid, info.st_gid)
            for name in os.listxattr(fd_in):
                if xattr_allowed(name):
                    os.setxattr(fd, name, os.getxattr(fd_in, name))
            os.fchmod(fd, stat.S_IMODE(info.st_mode))
            os.utime(fd, ns=(info.st_atime_ns, info.st_mtime_ns))
        finally:
            os.close(fd)
        self.counts.bytes += info.st_size
        self.counts.files += 1

    def _finish_directories(self) -> None:
        """Directory modes (unprivileged) and times last, so later entries do not bump them.
        Each directory is checked to still be one only when something went away in this
        layer (otherwise every one of them is where this layer met or made it)."""
        check = self.removed
        for rel, mode in self.dir_modes.items():
            path = self.resolver.path(rel)
            if not check or _is_dir(path):
                os.chmod(path, mode)
        for rel, times in self.dir_times.items():
            path = self.resolver.path(rel)
            if not check or _is_dir(path):
                os.utime(path, ns=times, follow_symlinks=False)

    def stats(self, entries: int, digests: LayerDigests) -> ApplyStats:
        c, skipped = self.counts, self.metadata.skipped
        return ApplyStats(
            entries=entries,
            files=c.files,
            directories=c.directories,
            symlinks=c.symlinks,
            hardlinks=c.hardlinks,
            specials=c.specials,
            whiteouts=c.whiteouts,
            opaques=c.opaques,
            bytes=c.bytes,
            skipped_owners=skipped.owners,
            skipped_devices=skipped.devices,
            skipped_xattrs=skipped.xattrs,
            digests=digests,
        )


def _is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
