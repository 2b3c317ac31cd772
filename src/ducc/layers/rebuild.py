"""Re-emit a layer as a clean tar, for tools that take a tar stream (`cvmfs_server ingest`).

The output holds the layer's literal content, like LITERAL application: normalised relative
names, no `..`, hard links only to earlier entries of the same stream, symlink targets
verbatim, PAX for long names, xattrs under the same allow-list. Whatever `apply_layer`
refuses is refused here too. Memory stays bounded: data streams through in chunks.
"""

from __future__ import annotations

import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ducc.errors import HostileLayer, LayerError, MalformedLayer, VerificationError
from ducc.interrupts import INTERRUPTS
from ducc.layers.limits import Limits
from ducc.layers.metadata import XATTR_PREFIX, parse_ns, times_of, xattr_allowed
from ducc.layers.paths import Resolver, open_file, read_symlink, unresolved_link
from ducc.layers.stream import READ_AHEAD_BYTES, LayerDigests, LayerStream
from ducc.layers.tarheader import BLOCK
from ducc.layers.tarstream import CHUNK, WHITEOUT, Entry, Kind, TarReader

_END = bytes(2 * BLOCK)
_TYPES = {
    Kind.FILE: tarfile.REGTYPE,
    Kind.DIRECTORY: tarfile.DIRTYPE,
    Kind.SYMLINK: tarfile.SYMTYPE,
    Kind.HARDLINK: tarfile.LNKTYPE,
    Kind.CHAR: tarfile.CHRTYPE,
    Kind.BLOCK: tarfile.BLKTYPE,
    Kind.FIFO: tarfile.FIFOTYPE,
}


@dataclass(frozen=True, slots=True)
class RebuildStats:
    """`plain`: the literal tree of this layer is exactly what applying it as a changeset to
    an empty tree makes (no whiteout or opaque marker, no name twice, no entry below a symlink
    of the layer, no file copied from below, a root entry only as root:root 0755), so a bottom
    chain may start as a copy of the published layer tree."""

    entries: int
    bytes_written: int
    copied_from_lower: int
    digests: LayerDigests
    plain: bool


def rebuild_tar(
    stream: LayerStream,
    out: BinaryIO,
    *,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
    name: str,
    lower: Path | None = None,
) -> RebuildStats:
    """Write the clean tar of the layer in `stream` to `out`, then verify the stream.

    A hard link to a file no earlier entry holds becomes a regular file copied from `lower`
    (the tree below this layer) when it holds a regular file there; else it is refused.
    The root entry (`./`) is left out: the consumer owns the directory it extracts into.
    """
    stream.limit(limits.max_bytes + READ_AHEAD_BYTES)
    reader = TarReader(stream, limits=limits, name=name)
    writer = _Writer(out, reader, lower)
    try:
        for entry in reader:
            INTERRUPTS.check()
            writer.add(entry)
        digests = stream.finish()  # verified before the end marker: a consumer of a layer
        writer.write(_END)  # that proves wrong never sees a complete archive
    except (MalformedLayer, VerificationError) as exc:
        stream.check_download(exc)
        raise
    finally:
        stream.close()
    return RebuildStats(writer.entries, writer.written, writer.copied, digests, writer.plain)


class _Writer:
    def __init__(self, out: BinaryIO, reader: TarReader, lower: Path | None) -> None:
        self.out = out
        self.reader = reader
        self.lower = Resolver(os.fspath(lower)) if lower is not None else None
        self.files: set[str] = set()  # names a later hard link may point to
        self.entries = self.written = self.copied = 0
        self.seen: set[str] = set()
        self.symlinks: set[str] = set()
        self.plain = True

    def write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.written += len(data)

    def add(self, entry: Entry) -> None:
        self._watch(entry)
        if not entry.name or (entry.kind is Kind.HARDLINK and entry.link == entry.name):
            return  # the root belongs to the consumer; a link to itself is a no-op
        if entry.kind is Kind.HARDLINK and entry.link not in self.files:
            self._copy_from_lower(entry)
            return
        self.write(_header(entry).tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if entry.kind is Kind.FILE:
            for view in self.reader.chunks():
                self.write(view)
            self.write(bytes(-entry.size % BLOCK))
        if entry.kind is Kind.DIRECTORY:
            self.files.discard(entry.name)
        else:
            self.files.add(entry.name)
        self.entries += 1

    def _watch(self, entry: Entry) -> None:
        """Note what makes the literal tree differ from the changeset (see RebuildStats)."""
        if not self.plain:
            return
        if not entry.name:
            info = entry.info
            self.plain = (info.mode & 0o7777, info.uid, info.gid) == (0o755, 0, 0)
        else:
            below_symlink = any(p in self.symlinks for p in _ancestors(entry.parent))
            again = entry.name in self.seen
            self.plain = not (entry.base.startswith(WHITEOUT) or again or below_symlink)
        self.seen.add(entry.name)
        if entry.kind is Kind.SYMLINK:
            self.symlinks.add(entry.name)

    def _copy_from_lower(self, entry: Entry) -> None:
        fd = self._open_lower(entry.link)
        link = read_symlink(self.lower, entry.link) if fd is None and self.lower else None
        if link is not None:
            self._emit_symlink(entry.name, *link)
        elif fd is None:
            raise HostileLayer(
                self.reader.layer, entry.info.name, unresolved_link(self.lower, entry.link)
            )
        else:
            try:
                self._emit_file(entry.name, fd)
            finally:
                os.close(fd)
        self.files.add(entry.name)
        self.entries += 1
        self.copied += 1
        self.plain = False

    def _open_lower(self, link: str) -> int | None:
        return open_file(self.lower, link) if self.lower is not None else None

    def _emit_symlink(self, name: str, target: str, info: os.stat_result) -> None:
        """A hard link to a lower symlink: the symlink itself, as the flat tree has it."""
        header = tarfile.TarInfo(name)
        header.type = tarfile.SYMTYPE
        header.linkname = target
        header.mode = 0o777
        header.uid, header.gid = info.st_uid, info.st_gid
        header.mtime = info.st_mtime_ns // 1_000_000_000
        self.write(header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def _emit_file(self, name: str, fd: int) -> None:
        info = os.fstat(fd)
        header = tarfile.TarInfo(name)
        header.mode = stat.S_IMODE(info.st_mode)
        header.uid, header.gid = info.st_uid, info.st_gid
        header.mtime = info.st_mtime_ns // 1_000_000_000
        header.size = info.st_size
        header.pax_headers = _file_xattrs(fd)
        self.write(header.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        left = info.st_size
        while left:
            data = os.read(fd, min(CHUNK, left))
            if not data:
                raise LayerError(f"{name}: the file below changed while it was copied")
            self.write(data)
            left -= len(data)
        self.write(bytes(-info.st_size % BLOCK))


def _ancestors(parent: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b', 'a/b/c']."""
    parts = parent.split("/") if parent else []
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _header(entry: Entry) -> tarfile.TarInfo:
    source = entry.info
    header = tarfile.TarInfo(entry.name)
    header.type = _TYPES[entry.kind]
    header.mode = source.mode & 0o7777
    header.uid, header.gid = source.uid, source.gid
    header.uname, header.gname = source.uname, source.gname
    header.mtime = times_of(source)[1] // 1_000_000_000  # an int: tarfile writes no NaN, inf
    header.size = entry.size
    header.linkname = entry.link
    header.devmajor, header.devminor = source.devmajor, source.devminor
    pax = {
        key: value
        for key, value in source.pax_headers.items()
        if key.startswith(XATTR_PREFIX) and xattr_allowed(key[len(XATTR_PREFIX) :])
    }
    if _decimal(source.pax_headers.get("mtime")):  # keep sub-second precision as written
        pax["mtime"] = source.pax_headers["mtime"]
    header.pax_headers = pax
    return header


def _decimal(text: str | None) -> bool:
    """A PAX time ducc reads as a number (not `nan`, `inf`, `1e300`: those are clamped)."""
    if text is None:
        return False
    try:
        parse_ns(text)
    except ValueError:
        return False
    return True


def _file_xattrs(fd: int) -> dict[str, str]:
    found = {}
    for name in os.listxattr(fd):
        if xattr_allowed(name):
            value = os.getxattr(fd, name).decode("utf-8", "surrogateescape")
            found[XATTR_PREFIX + name] = value
    return found
