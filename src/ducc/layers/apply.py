"""Apply one layer to a directory tree: OCI changeset semantics or the literal layer content.

CHANGESET (chains, flat trees, `ducc unpack`): whiteouts and opaque markers hide lower
content and are not materialised; every non-directory entry unlinks what is there and
creates anew, a directory over a directory only updates attributes (OCI `layer.md`,
"Changeset over existing files"). LITERAL (`.layers/<xx>/<hex>/layerfs`): the entries as
they are, `.wh.*` files included. Both modes keep every write inside the tree: see paths.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ducc.errors import HostileLayer, LayerError, MalformedLayer, VerificationError
from ducc.interrupts import INTERRUPTS
from ducc.layers.limits import Limits
from ducc.layers.metadata import Metadata, times_of, xattr_allowed
from ducc.layers.paths import ResolveError, Resolver, open_file, read_symlink
from ducc.layers.stage import remove_tree
from ducc.layers.stream import READ_AHEAD_BYTES, LayerDigests, LayerStream
from ducc.layers.tarstream import OPAQUE, WHITEOUT, Entry, Kind, TarReader
from ducc.layers.whiteout import Upper, Whiteouts

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DEVICES = {Kind.CHAR: stat.S_IFCHR, Kind.BLOCK: stat.S_IFBLK, Kind.FIFO: stat.S_IFIFO}


class ApplyMode(StrEnum):
    CHANGESET = "changeset"
    LITERAL = "literal"


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What one layer did to the tree, and the digests its stream measured."""

    entries: int
    files: int
    directories: int
    symlinks: int
    hardlinks: int
    specials: int
    whiteouts: int
    opaques: int
    bytes: int
    skipped_owners: int
    skipped_devices: int
    skipped_xattrs: int
    digests: LayerDigests


@dataclass(slots=True)
class _Counts:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0
    whiteouts: int = 0
    opaques: int = 0
    bytes: int = 0


def apply_layer(
    root: Path,
    stream: LayerStream,
    *,
    mode: ApplyMode = ApplyMode.CHANGESET,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
    name: str,
    lower: Path | None = None,
    privileged: bool | None = None,
) -> ApplyStats:
    """Apply the layer in `stream` to the existing directory `root` and verify the stream.

    `lower` (LITERAL only) is the tree below this layer, for hard links to files the layer
    does not contain. `privileged` (default: running as root) decides whether owners and
    device nodes are applied. Any refusal raises HostileLayer naming the layer and entry;
    the tree is then partly written and the caller discards it (see `stage.staged`).
    """
    stream.limit(limits.max_bytes + READ_AHEAD_BYTES)
    reader = TarReader(stream, limits=limits, name=name)
    applier = _Applier(os.fspath(root), mode, name, lower, privileged)
    try:
        applier.run(reader)
        digests = stream.finish()
    except (MalformedLayer, VerificationError) as exc:
        stream.check_download(exc)
        raise
    except OSError as exc:
        raise LayerError(f"layer {name}: entry {applier.entry!r}: {exc}") from exc
    finally:
        stream.close()
    applier.metadata.report()
    return applier.stats(reader.count, digests)


class _Applier:
    def __init__(
        self, root: str, mode: ApplyMode, layer: str, lower: Path | None, privileged: bool | None
    ) -> None:
        self.root = root
        self.changeset = mode is ApplyMode.CHANGESET
        self.layer = layer
        self.privileged = os.geteuid() == 0 if privileged is None else privileged
        self.metadata = Metadata(privileged=self.privileged, layer=layer)
        self.resolver = Resolver(root, seen=self._seen, made=self._made)
        self.lower = Resolver(os.fspath(lower)) if lower is not None else None
        self.upper = Upper()
        self.whiteouts = Whiteouts(root, self.upper, self.resolver.forget)
        self.counts = _Counts()
        self.entry = ""
        self.current: Entry | None = None
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.dir_modes: dict[str, int] = {}  # unprivileged: final modes of opened-up dirs
        self._seen("", os.lstat(root))

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

    def run(self, reader: TarReader) -> None:
        handlers = {
            Kind.FILE: self._file,
            Kind.DIRECTORY: self._directory,
            Kind.SYMLINK: self._symlink,
            Kind.HARDLINK: self._hardlink,
        }
        for entry in reader:
            INTERRUPTS.check()  # a signal stops a long layer between entries
            self.entry = entry.info.name
            self.current = entry
            try:
                if not entry.name:
                    self._directory(entry, "", reader)
                elif self.changeset and entry.base.startswith(WHITEOUT):
                    self._whiteout(entry)
                else:
                    rel = self._place(entry)
                    handlers.get(entry.kind, self._special)(entry, rel, reader)
            except ResolveError as exc:
                raise self.refuse(str(exc)) from None
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

    def _file(self, entry: Entry, rel: str, reader: TarReader) -> None:
        fd = self._new_file(rel)
        try:
            self.counts.bytes += reader.copy_to(fd)
            self.metadata.file(fd, entry.info)
        finally:
            os.close(fd)
        self.counts.files += 1

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
            self.resolver.forget()
        else:
            os.unlink(path)
            if stat.S_ISLNK(info.st_mode):
                self.resolver.forget()

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
                raise self.refuse(f"hard link target {entry.link!r} is in no layer below")
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
        """Directory modes (unprivileged) and times last, so later entries do not bump them."""
        for rel, mode in self.dir_modes.items():
            path = self.resolver.path(rel)
            if _is_dir(path):
                os.chmod(path, mode)
        for rel, times in self.dir_times.items():
            path = self.resolver.path(rel)
            if _is_dir(path):
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
