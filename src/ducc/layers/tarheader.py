"""Tar header blocks parsed with caps, for the streaming reader (tarstream.py).

`tarfile` parses the headers (ustar, GNU long names, PAX, xattrs); this wraps its parser so
that extension headers are size-limited before they are read into memory and GNU sparse
files are refused before their maps are read, and decodes the common one-block header in
one pass.
"""

from __future__ import annotations

import struct
import tarfile
import zlib
from typing import Any, Protocol

BLOCK = tarfile.BLOCKSIZE
# A zero block (end-of-archive marker) or no data at all where a header would start.
END_OF_DATA: tuple[type[Exception], ...] = (
    tarfile.EOFHeaderError,  # type: ignore[attr-defined]
    tarfile.EmptyHeaderError,  # type: ignore[attr-defined]
)
MAX_EXTENSIONS = 16  # extension headers before one entry (a real one has at most 3)
MAX_GLOBALS = 1000  # records kept from PAX global headers
_DEVICES = (tarfile.CHRTYPE, tarfile.BLKTYPE)
_EXTENSIONS = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)


class HeaderStream(Protocol):
    """What tarfile's header parser reads a member's blocks from."""

    def read(self, n: int) -> bytes: ...

    def tell(self) -> int: ...


class Refused(Exception):
    """Raised from inside header parsing; turned into HostileLayer with the entry's name."""


# The fixed fields of a ustar/GNU header block (POSIX.1-1988 ustar layout).
_FIELDS = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")
_NUMBERS = struct.Struct("8s8s8s12s12s8s")  # mode uid gid size mtime chksum, at 100
_NUL_IS_SPACE = bytes.maketrans(b"\0", b" ")
_OCTAL = (8,) * 6
_DEVICE = struct.Struct("329x8s8s")  # devmajor devminor


def checksum(block: bytes | bytearray) -> int:
    """The unsigned checksum of a header block: the sum of its bytes, the checksum field
    (148-155) counted as 8 spaces. The low half of zlib's Adler-32 is 1 + the byte sum modulo
    65521, exact for up to 256 bytes (256 * 255 < 65520): three pieces around the field are
    summed in C, about 5x faster than `sum()` over the block."""
    a, b, c = block[:148], block[156:412], block[412:BLOCK]
    adler = zlib.adler32
    return 256 + (adler(a) & 0xFFFF) + (adler(b) & 0xFFFF) + (adler(c) & 0xFFFF) - 3


def _text(field: bytes, encoding: str, errors: str) -> str:
    return field.partition(b"\0")[0].decode(encoding, errors)


class Header(tarfile.TarInfo):
    """tarfile's header parser with caps: extension headers are size-limited before they are
    read into memory, GNU sparse files are refused before their maps are read. The fixed
    fields of plain headers are decoded in one pass (tarfile's own `frombuf` costs about 13
    us a block, which dominates layers of small files); anything unusual (base-256 numbers,
    odd checksums, sparse, end blocks) goes to tarfile's parser, which decides."""

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Header:
        header = cls.plain(buf, encoding, errors)
        return header if header is not None else super().frombuf(buf, encoding, errors)

    @classmethod
    def plain(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Header | None:
        """The header in `buf` when it is a plain one, else None (tarfile's parser decides)."""
        if len(buf) != BLOCK or buf[156:157] == tarfile.GNUTYPE_SPARSE:
            return None
        fields = _FIELDS.unpack_from(buf)
        try:  # octal, NUL or space terminated (anything after a NUL: tarfile's parser)
            mode, uid, gid, size, mtime, chksum = map(
                int, _NUMBERS.unpack(buf[100:156].translate(_NUL_IS_SPACE)), _OCTAL
            )
        except ValueError:  # base-256, empty or garbage
            return None
        if chksum != checksum(buf):
            return None  # also an end-of-archive block, or a signed checksum
        header = cls(_text(fields[0], encoding, errors))
        header.mode, header.uid, header.gid, header.size, header.mtime, header.chksum = (
            mode,
            uid,
            gid,
            size,
            mtime,
            chksum,
        )
        header.type = fields[7]
        if header.type in _DEVICES:
            try:
                header.devmajor, header.devminor = (
                    int(f.partition(b"\0")[0] or b"0", 8) for f in _DEVICE.unpack_from(buf)
                )
            except ValueError:
                return None
        header.linkname = _text(fields[8], encoding, errors)
        header.uname = _text(fields[11], encoding, errors)
        header.gname = _text(fields[12], encoding, errors)
        if header.type == tarfile.AREGTYPE and header.name.endswith("/"):
            header.type = tarfile.DIRTYPE  # old V7 tar: a directory is a file ending in /
        if header.type == tarfile.DIRTYPE:
            header.name = header.name.rstrip("/")
        if fields[15][:1] not in (b"", b"\0") and header.type not in tarfile.GNU_TYPES:
            header.name = f"{_text(fields[15], encoding, errors)}/{header.name}"  # ustar prefix
        return header

    @classmethod
    def fromtarfile(cls, tarfile_: Any) -> Header:
        return cls.from_block(tarfile_.fileobj.read(BLOCK), tarfile_)

    @classmethod
    def from_block(cls, buf: bytes, tarfile_: Any) -> Header:
        """The member whose (first) header block is `buf`, extension headers applied."""
        header = cls.frombuf(buf, tarfile_.encoding, tarfile_.errors)
        header.offset = tarfile_.fileobj.tell() - BLOCK
        if header.type == tarfile.GNUTYPE_SPARSE:
            raise Refused("GNU sparse files are not supported")
        if header.type in _EXTENSIONS:
            tarfile_.extensions += 1
            if header.size > tarfile_.max_header:
                raise Refused(f"extension header of {header.size} bytes exceeds the limit")
            if tarfile_.extensions > MAX_EXTENSIONS or len(tarfile_.pax_headers) > MAX_GLOBALS:
                raise Refused("too many extension headers")  # tarfile recurses per header
        return header._proc_member(tarfile_)  # type: ignore[attr-defined,no-any-return]

    def _proc_gnusparse_00(self, *_: Any) -> None:
        raise Refused("GNU sparse files are not supported")

    _proc_gnusparse_01 = _proc_gnusparse_00
    _proc_gnusparse_10 = _proc_gnusparse_00


class HeaderSource:
    """The attributes tarfile's header parser reads from a TarFile, and a count of the
    extension headers (PAX, GNU long names) before the current entry."""

    encoding = "utf-8"
    errors = "surrogateescape"

    def __init__(self, fileobj: HeaderStream, max_header: int) -> None:
        self.fileobj = fileobj
        self.max_header = max_header
        self.pax_headers: dict[str, str] = {}
        self.offset = 0
        self.extensions = 0
