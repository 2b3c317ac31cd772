"""Layer compression: the media type picks none/gzip/zstd, the magic bytes must agree.

gzip goes through ISA-L (`isal.igzip`, about 2x zlib) when it is importable, zlib otherwise;
zstd through `zstandard`. The decompressed stream is capped (decompression bombs) and a
truncated zstd stream is an error (the library itself returns a silent short read).
"""

from __future__ import annotations

import gzip
import zlib
from types import ModuleType
from typing import Any, cast

import zstandard

from ducc.errors import HostileLayer, VerificationError
from ducc.oci.digest import BinaryReadable, ReadableStream
from ducc.oci.model import Compression, layer_compression

_igzip: ModuleType | None
try:  # ISA-L inflates about twice as fast as zlib; optional at run time.
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib

    _ISAL_ERRORS: tuple[type[Exception], ...] = (cast(type[Exception], _isal_zlib.error),)
except ImportError:  # pragma: no cover - exercised only where isal is missing
    _igzip = None
    _ISAL_ERRORS = ()

_CORRUPT: tuple[type[Exception], ...] = (
    EOFError,
    OSError,
    zlib.error,
    zstandard.ZstdError,
    *_ISAL_ERRORS,
)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CHUNK = 1 << 20


def compression_for(media_type: str) -> Compression:
    """The compression of a layer media type (OCI image-spec `media-types.md`); foreign,
    non-distributable and unknown layers raise ManifestError. The table of layer media types
    lives in `ducc.oci`, shared with the registry client."""
    return layer_compression(media_type)


def sniff(head: bytes) -> Compression:
    """What the first bytes of a blob look like (anything unrecognised is taken as tar)."""
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


class _Prefixed(ReadableStream):
    """A reader that first returns bytes already read (the sniffed head), then the rest."""

    def __init__(self, head: bytes, raw: BinaryReadable) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._raw.read(n)
        if n < 0 or n >= len(self._head):
            head, self._head = self._head, b""
            return head + (self._raw.read(n - len(head)) if n > len(head) else b"")
        head, self._head = self._head[:n], self._head[n:]
        return head


class ZstdFrames:
    """Follows zstd frame and block headers (RFC 8878 section 3.1) over the compressed bytes.

    `complete` is true only between frames, which tells a finished stream from a cut one.
    """

    def __init__(self) -> None:
        self._state = "magic"
        self._need = 4
        self._head = b""
        self._skip = 0
        self._checksum = False
        self.error: str | None = None

    @property
    def complete(self) -> bool:
        return self._state == "magic" and not self._head and not self._skip and not self.error

    def feed(self, data: bytes) -> None:
        if self.error:
            return
        try:
            self._feed(data)
        except ValueError as exc:
            self.error = str(exc)

    def _feed(self, data: bytes) -> None:
        pos, end = 0, len(data)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            take = min(self._need - len(self._head), end - pos)
            self._head += data[pos : pos + take]
            pos += take
            if len(self._head) == self._need:
                head, self._head = self._head, b""
                self._advance(head)

    def _advance(self, head: bytes) -> None:
        if self._state == "magic":
            self._magic(head)
        elif self._state == "descriptor":
            self._descriptor(head[0])
        elif self._state == "skippable":
            self._skip = int.from_bytes(head, "little")
            self._expect("magic", 4)
        elif self._state == "block":
            self._block(int.from_bytes(head, "little"))
        elif self._state == "header":  # the rest of the frame header: sizes, dictionary id
            self._expect("block", 3)
        else:  # the content checksum closes the frame
            self._expect("magic", 4)

    def _expect(self, state: str, need: int) -> None:
        self._state, self._need = state, need

    def _magic(self, head: bytes) -> None:
        if head == ZSTD_MAGIC:
            self._expect("descriptor", 1)
        elif head[1:] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50:
            self._expect("skippable", 4)
        else:
            raise ValueError("bad zstd frame magic")

    def _descriptor(self, fhd: int) -> None:
        single_segment = bool(fhd & 0x20)
        self._checksum = bool(fhd & 0x04)
        content_size = (1 if single_segment else 0, 2, 4, 8)[fhd >> 6]
        rest = (0 if single_segment else 1) + (0, 1, 2, 4)[fhd & 0x03] + content_size
        if rest:
            self._expect("header", rest)
        else:
            self._expect("block", 3)

    def _block(self, header: int) -> None:
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise ValueError("reserved zstd block type")
        self._skip = 1 if kind == 1 else size
        if not last:
            self._expect("block", 3)
        elif self._checksum:
            self._expect("checksum", 4)
        else:
            self._expect("magic", 4)


class _Tap:
    """Passes compressed bytes to the zstd reader while the frame tracker watches them."""

    def __init__(self, raw: BinaryReadable, frames: ZstdFrames) -> None:
        self._raw = raw
        self._frames = frames

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._frames.feed(data)
        return data


class Decompressed(ReadableStream):
    """The decompressed bytes of a layer blob, counted and capped at `max_bytes`."""

    def __init__(
        self,
        raw: BinaryReadable,
        compression: Compression,
        *,
        name: str,
        max_bytes: int | None = None,
    ) -> None:
        self.name = name
        self.compression = compression
        self.max_bytes = max_bytes
        self.count = 0
        self.eof = False
        head = _read_head(raw)
        found = sniff(head)
        if found is not compression:
            raise VerificationError(
                f"layer {name}: media type says {compression} but the data is {found}",
                hint="the registry mislabels this layer; nothing was unpacked",
            )
        self._frames: ZstdFrames | None = None
        self._reader = self._open(_Prefixed(head, raw))

    def _open(self, raw: _Prefixed) -> BinaryReadable:
        if self.compression is Compression.GZIP:
            return _open_gzip(raw)
        if self.compression is Compression.ZSTD:
            self._frames = ZstdFrames()
            tap = cast(Any, _Tap(raw, self._frames))
            zstd = zstandard.ZstdDecompressor()
            return zstd.stream_reader(tap, read_size=CHUNK, read_across_frames=True)
        return raw

    def read(self, n: int = -1) -> bytes:
        if self.eof:
            return b""
        size = CHUNK if n < 0 else n
        try:
            data = self._reader.read(size)
        except _CORRUPT as exc:
            raise VerificationError(
                f"layer {self.name}: corrupt {self.compression} data: {exc}",
                hint="the blob is damaged or not what its media type says; nothing was kept",
            ) from exc
        if not data and size:
            self._end()
        self.count += len(data)
        if self.max_bytes is not None and self.count > self.max_bytes:
            raise HostileLayer(
                self.name, "(stream)", f"expands to more than {self.max_bytes} bytes"
            )
        return data

    def _end(self) -> None:
        self.eof = True
        if self._frames is None or self._frames.complete:
            return
        if self._frames.error:
            raise VerificationError(
                f"layer {self.name}: corrupt zstd data: {self._frames.error}",
                hint="the blob is damaged or not what its media type says; nothing was kept",
            )
        raise VerificationError(
            f"layer {self.name}: zstd data ends in the middle of a frame",
            hint="the blob is truncated; nothing was kept",
        )


def _open_gzip(raw: _Prefixed) -> BinaryReadable:
    if _igzip is not None:
        return cast(BinaryReadable, _igzip.IGzipFile(fileobj=raw, mode="rb"))
    return gzip.GzipFile(fileobj=cast(Any, raw), mode="rb")


def _read_head(raw: BinaryReadable) -> bytes:
    """At least 4 bytes (enough for any magic) unless the stream is shorter."""
    head = raw.read(CHUNK)
    while head and len(head) < 4:
        more = raw.read(CHUNK)
        if not more:
            break
        head += more
    return head
