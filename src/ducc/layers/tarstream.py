"""Streaming tar reader for layers: validated entries, data copied in large chunks.

Headers are parsed by tarheader.py (tarfile's parser, capped); the byte stream, the data
copy and every safety check are here. Names are normalised (leading `/` and `./`
stripped), `..` is refused, limits are enforced before any data is read.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from ducc.errors import HostileLayer, MalformedLayer
from ducc.layers.limits import Limits
from ducc.layers.tarheader import BLOCK, END_OF_DATA, Header, HeaderSource, Refused
from ducc.oci.digest import BinaryReadable

CHUNK = 1 << 20
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_ID_MAX = (1 << 32) - 2  # (uid_t)-1 means "leave unchanged" to chown(2)


class Kind(StrEnum):
    FILE = "file"
    DIRECTORY = "directory"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "character device"
    BLOCK = "block device"
    FIFO = "fifo"


_KINDS = {
    tarfile.REGTYPE: Kind.FILE,
    tarfile.AREGTYPE: Kind.FILE,
    tarfile.CONTTYPE: Kind.FILE,
    tarfile.DIRTYPE: Kind.DIRECTORY,
    tarfile.SYMTYPE: Kind.SYMLINK,
    tarfile.LNKTYPE: Kind.HARDLINK,
    tarfile.CHRTYPE: Kind.CHAR,
    tarfile.BLKTYPE: Kind.BLOCK,
    tarfile.FIFOTYPE: Kind.FIFO,
}
_PLAIN = frozenset(_KINDS)  # type flags of members whose header is one block


@dataclass(frozen=True, slots=True)
class Entry:
    """One validated tar member. `name` is normalised ('' is the root); `parent` + `base`
    split it; `link` is the normalised hard-link target or the verbatim symlink target."""

    name: str
    parent: str
    base: str
    kind: Kind
    info: tarfile.TarInfo
    link: str

    @property
    def size(self) -> int:
        return self.info.size if self.kind is Kind.FILE else 0


class TarReader:
    """Iterate validated entries of a tar stream; the caller reads each file's data in turn."""

    def __init__(self, stream: BinaryReadable, *, limits: Limits, name: str) -> None:
        self.layer = name
        self.limits = limits
        self._stream = stream
        self._buf = b""
        self._pos = 0
        self._offset = 0  # bytes handed out so far
        self._left = 0  # data bytes of the current entry not yet read
        self._pad = 0
        self._entry = ""
        self.count = 0
        self._source = HeaderSource(self, limits.max_header_bytes)

    # -- the byte stream, as tarfile's header parser reads it --------------------------

    def read(self, n: int) -> bytes:
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
        else:
            data = self._read_slow(n)
        self._offset += len(data)
        return data

    def _read_slow(self, n: int) -> bytes:
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        while have < n:
            chunk = self._stream.read(max(CHUNK, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        joined = b"".join(parts)
        self._buf, self._pos = joined, min(n, len(joined))
        return joined[:n]

    def tell(self) -> int:
        return self._offset

    @property
    def position(self) -> int:
        """Bytes of the tar stream consumed so far."""
        return self._offset

    # -- entries -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Entry]:
        while True:
            self._skip_rest()
            info = self._next_header()
            if info is None:
                return
            entry = self._validate(info)
            self._left = size = info.size if entry.kind is Kind.FILE else 0
            self._pad = -size % BLOCK
            yield entry

    def _next_header(self) -> tarfile.TarInfo | None:
        start = self._offset
        source = self._source
        source.extensions = 0
        block = self.read(BLOCK)
        if block[156:157] in _PLAIN and not source.pax_headers:
            # The common member: one block, no extension header (tarfile's own processing
            # of such a member only records offsets and copies the empty PAX globals).
            header = Header.plain(block, source.encoding, source.errors)
            if header is not None:
                header.offset, header.offset_data = start, start + BLOCK
                header.pax_headers = {}
                return header
        try:
            return Header.from_block(block, source)
        except END_OF_DATA:
            return None  # end-of-archive marker, or data ending at a header boundary
        except Refused as exc:
            raise HostileLayer(self.layer, f"(header at byte {start})", str(exc)) from None
        except (tarfile.HeaderError, ValueError, UnicodeError) as exc:
            raise MalformedLayer(
                self.layer, f"(header at byte {start})", f"malformed tar header: {exc}"
            ) from None

    def refuse(self, entry: str, reason: str) -> HostileLayer:
        return HostileLayer(self.layer, entry, reason)

    def _validate(self, info: tarfile.TarInfo) -> Entry:
        self.count += 1
        raw = info.name
        self._entry = raw
        if self.count > self.limits.max_entries:
            raise self.refuse(raw, f"more than {self.limits.max_entries} entries")
        kind = _KINDS.get(info.type)
        if kind is None:
            raise self.refuse(raw, f"unsupported entry type {info.type!r}")
        if info.sparse is not None:
            raise self.refuse(raw, "sparse files are not supported")
        parts = self._parts(raw, raw)
        name = "/".join(parts)
        if not name and kind is not Kind.DIRECTORY:
            raise self.refuse(raw, f"refusing to replace the root directory with a {kind}")
        self._check_sizes(info, kind)
        link = self._link(info, kind)
        parent, _, base = name.rpartition("/")
        if base.startswith(WHITEOUT) and base != OPAQUE:
            check_whiteout(self, raw, base)
        return Entry(name, parent, base, kind, info, link)

    def _parts(self, text: str, entry: str, what: str = "name") -> list[str]:
        """`text` split into components, checked (`entry` is named in refusals)."""
        limits = self.limits
        if "\x00" in text:
            raise self.refuse(entry, f"NUL byte in {what}")
        if len(text) > limits.max_path and _size(text) > limits.max_path:
            raise self.refuse(entry, f"{what} longer than {limits.max_path} bytes")
        parts = [p for p in text.split("/") if p and p != "."]
        if ".." in parts:
            raise self.refuse(entry, f"'..' in {what} {text!r}")
        if len(parts) > limits.max_depth:
            raise self.refuse(entry, f"more than {limits.max_depth} components in {what}")
        if len(text) > limits.max_name:  # else no component can be longer
            for part in parts:
                if len(part) > limits.max_name and _size(part) > limits.max_name:
                    raise self.refuse(
                        entry, f"a component of the {what} is over {limits.max_name} bytes"
                    )
        return parts

    def _check_sizes(self, info: tarfile.TarInfo, kind: Kind) -> None:
        raw = info.name
        if kind is Kind.FILE and self._offset + info.size > self.limits.max_bytes:
            raise self.refuse(raw, f"layer expands to more than {self.limits.max_bytes} bytes")
        if not (0 <= info.uid <= _ID_MAX and 0 <= info.gid <= _ID_MAX):
            raise self.refuse(raw, f"owner {info.uid}:{info.gid} out of range")

    def _link(self, info: tarfile.TarInfo, kind: Kind) -> str:
        if kind is Kind.HARDLINK:
            target = "/".join(self._parts(info.linkname, info.name, "hard link target"))
            if not target:
                raise self.refuse(info.name, "hard link to the root directory")
            return target
        if kind is not Kind.SYMLINK:
            return ""
        target = info.linkname
        if not target or "\x00" in target:
            raise self.refuse(info.name, "empty symlink target or NUL byte in it")
        if len(target) > self.limits.max_path and _size(target) > self.limits.max_path:
            raise self.refuse(info.name, f"symlink target longer than {self.limits.max_path}")
        return target

    # -- entry data --------------------------------------------------------------------

    def chunks(self) -> Iterator[memoryview]:
        """The current entry's data in the largest pieces at hand (views, valid until the
        next call)."""
        while self._left:
            if self._pos >= len(self._buf):
                self._buf, self._pos = self._stream.read(CHUNK), 0
                if not self._buf:
                    raise MalformedLayer(self.layer, self._entry, "archive ends inside its data")
            step = min(self._left, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos : self._pos + step]
            self._pos += step
            self._left -= step
            self._offset += step
            yield view

    def copy_to(self, *fds: int) -> int:
        """Write the current entry's data to each of `fds`; the number of bytes copied."""
        total = 0
        for view in self.chunks():
            total += len(view)
            for fd in fds:
                left = view
                while left:
                    left = left[os.write(fd, left) :]
        return total

    def _skip_rest(self) -> None:
        if self._left:
            for _ in self.chunks():
                pass
        if self._pad:
            if len(self.read(self._pad)) != self._pad:
                raise MalformedLayer(self.layer, self._entry, "archive ends inside its padding")
            self._pad = 0


def check_whiteout(reader: TarReader, raw: str, base: str) -> None:
    """`.wh.<name>` must name something in the same directory (OCI `layer.md` Whiteouts)."""
    target = base[len(WHITEOUT) :]
    if target in ("", ".", ".."):
        raise reader.refuse(raw, f"invalid whiteout {base!r}")


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogateescape"))
