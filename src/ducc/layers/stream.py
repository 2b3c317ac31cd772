"""One layer blob as a verified tar byte stream, in one pass.

raw bytes -> digest and size of the blob -> decompressor (capped) -> diff_id digest -> tar.
`finish()` drains what the tar reader left and checks both digests; both are computed even
when nothing is expected, for the layer's metadata. Two helper threads overlap the work
with the caller's parsing and writing of the tar: one reads (a download, a file), hashes
and decompresses the blob, the other hashes the tar (ISA-L, zstd and hashlib release the
GIL while they work). This split gives the caller's thread, the busiest, the most room: on
two cores it applied a layer about 6 % sooner than one thread reading and hashing the blob
and another decompressing and hashing the tar.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from ducc.errors import DigestMismatch, SizeMismatch
from ducc.layers.compression import CHUNK, Decompressed, compression_for
from ducc.oci.digest import BinaryReadable, Digest, ReadableStream, VerifyingReader
from ducc.oci.model import Compression

# A stand-in expectation when the caller knows no digest: VerifyingReader still hashes and
# counts, and `verify()` is simply never called on it.
_UNKNOWN = Digest("sha256", "")


@dataclass(frozen=True, slots=True)
class LayerDigests:
    """What a drained layer stream measured: blob digest and size, diff_id and tar size."""

    blob: Digest
    size: int
    diff_id: Digest
    diff_size: int


READ_AHEAD_DEPTH = 4
# What the helper threads may have decompressed beyond the consumer (two queues, a chunk in
# each thread's hands and the consumer's): the tar reader checks its exact caps per entry,
# the stream's own cap (a backstop) must leave it this much room.
READ_AHEAD_BYTES = (2 * READ_AHEAD_DEPTH + 3) * CHUNK


class ReadAhead:
    """Reads `source` in a helper thread, up to `depth` chunks ahead of the consumer.

    An exception in the thread reaches the consumer at its next read. The thread starts at
    the first read (`lazy`) or at once. `close()` stops the thread and waits for it; after
    that the source belongs to the caller again.
    """

    def __init__(
        self,
        source: BinaryReadable,
        *,
        chunk: int = CHUNK,
        depth: int = READ_AHEAD_DEPTH,
        lazy: bool = False,
        name: str = "layer-read",
    ) -> None:
        self._source = source
        self._chunk = chunk
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._buffer = b""
        self._eof = False
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        if not lazy:
            self._thread.start()

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._source.read(self._chunk)
            except BaseException as exc:  # handed to the consumer
                self._put(exc)
                return
            self._put(data)
            if not data:
                return

    def _put(self, item: bytes | BaseException) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def read(self, n: int = -1, /) -> bytes:
        if not self._buffer:
            if self._eof:
                return b""
            if self._stop.is_set():
                raise ValueError("read from a closed read-ahead")
            if self._thread.ident is None:
                self._thread.start()
            item = self._queue.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
                return b""
            self._buffer = item
        if n < 0 or n >= len(self._buffer):
            data, self._buffer = self._buffer, b""
            return data
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is None:
            return
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()


class _Counted(ReadableStream):
    """Counts the bytes of a raw stream that verifies its own digest (the registry client's
    blob stream does, on the read that reaches the end): no second hash of the blob."""

    def __init__(self, raw: BinaryReadable, expected: Digest) -> None:
        self._raw = raw
        self.actual = expected
        self.count = 0

    def read(self, n: int = -1, /) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        return data


class LayerStream(ReadableStream):
    """A readable tar stream over a (compressed) layer blob that verifies what it read.

    `blob_verified` says that `raw` checks the blob digest itself (raising on mismatch at its
    end); the blob is then counted, not hashed again.
    """

    def __init__(
        self,
        raw: BinaryReadable,
        media_type: str,
        *,
        blob: Digest | None = None,
        size: int | None = None,
        diff_id: Digest | None = None,
        name: str,
        max_bytes: int | None = None,
        blob_verified: bool = False,
    ) -> None:
        self.name = name
        self.media_type = media_type
        self.compression: Compression = compression_for(media_type)
        self._size = size
        self._expect_blob = blob is not None and not blob_verified
        self._expect_diff = diff_id is not None
        self._blob: VerifyingReader | _Counted = (
            _Counted(raw, blob)
            if blob is not None and blob_verified
            else VerifyingReader(raw, blob or _UNKNOWN, size, f"layer {name}")
        )
        self._decompressed = Decompressed(  # reads the magic bytes now
            self._blob, self.compression, name=name, max_bytes=max_bytes
        )
        # Read, hashed and decompressed in one thread, the tar hashed in another; both start
        # at the first read.
        self._inflate = ReadAhead(self._decompressed, lazy=True, name="layer-inflate")
        self._tar = VerifyingReader(
            self._inflate, diff_id or _UNKNOWN, None, f"layer {name} diff_id"
        )
        self._ahead: ReadAhead | None = None

    def read(self, n: int = -1, /) -> bytes:
        if self._ahead is None:
            self._ahead = ReadAhead(self._tar, name="layer-diffid")
        return self._ahead.read(n)

    def close(self) -> None:
        """Stop reading ahead (after a failure); the stream cannot be read afterwards."""
        self._stop_threads()

    def _stop_threads(self) -> None:
        """Stop both helper threads; the blob may still be drained (`verify_blob`)."""
        if self._ahead is not None:
            self._ahead.close()
        self._inflate.close()

    def limit(self, max_bytes: int) -> None:
        """Lower the cap on expanded bytes (a decompression bomb is refused when it passes).

        Readers that check sizes per entry pass their cap plus READ_AHEAD_BYTES here.
        """
        current = self._decompressed.max_bytes
        self._decompressed.max_bytes = max_bytes if current is None else min(current, max_bytes)

    def finish(self) -> LayerDigests:
        """Read what is left (end-of-archive padding), then check blob and diff_id digests."""
        self.drain(CHUNK)
        self.verify_blob()
        self.close()
        if self._expect_diff:
            self._tar.verify()
        return LayerDigests(self._blob.actual, self._blob.count, self._tar.actual, self._tar.count)

    def check_download(self, after: Exception) -> None:
        """After the layer proved malformed or corrupt: if the blob digest (or size) is not
        what was expected, raise that instead, from `after` (a damaged download is worth
        fetching again; a bad layer is not). Reads only the rest of the compressed blob."""
        if isinstance(after, (DigestMismatch, SizeMismatch)):
            return
        try:
            self.verify_blob()
        except (DigestMismatch, SizeMismatch) as mismatch:
            raise mismatch from after
        except Exception:  # noqa: S110 - the original failure is the one to report
            pass

    def verify_blob(self) -> None:
        """Drain the compressed side only and check the blob digest and size.

        After a failure inside the tar this tells a damaged download (DigestMismatch, worth
        fetching again) from a layer that is bad as published; it never decompresses more.
        """
        self._stop_threads()
        self._blob.drain(CHUNK)
        if isinstance(self._blob, VerifyingReader) and self._expect_blob:
            self._blob.verify()
        elif self._size is not None and self._blob.count != self._size:
            raise SizeMismatch(f"layer {self.name}", self._size, self._blob.count)
