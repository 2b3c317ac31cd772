"""Builders of hostile layer blobs: tar bytes crafted by hand (broken headers, lying sizes,
PAX records), compression wrappers, and bombs that stay small on disk and on the wire.

`tests/support/hostile_cases.py` turns them into the named catalogue the end-to-end suite
runs; everything here returns bytes or an `images.Layer` ready to push.
"""

from __future__ import annotations

import functools
import hashlib
import tarfile
from collections.abc import Iterable

from tests.support.images import LAYER_TYPES, Compression, Entry, Layer, build_tar, compress

BLOCK = 512
MTIME = 1_700_000_000
END = bytes(2 * BLOCK)  # the end-of-archive marker


def ustar(
    name: str,
    *,
    kind: bytes = tarfile.REGTYPE,
    size: int = 0,
    link: str = "",
    prefix: str = "",
    mode: int = 0o644,
    size_field: bytes | None = None,
    major: int = 0,
    minor: int = 0,
) -> bytes:
    """One ustar header block, every field as given (nothing normalised or checked), with a
    correct checksum. `size_field` replaces the 12-byte size (e.g. base-256, garbage)."""
    block = bytearray(BLOCK)

    def put(offset: int, width: int, value: bytes) -> None:
        block[offset : offset + width] = value[:width].ljust(width, b"\0")

    put(0, 100, name.encode("utf-8", "surrogateescape"))
    put(100, 8, b"%07o\0" % mode)
    put(108, 8, b"0000000\0")
    put(116, 8, b"0000000\0")
    put(124, 12, size_field if size_field is not None else b"%011o\0" % size)
    put(136, 12, b"%011o\0" % MTIME)
    block[148:156] = b" " * 8
    block[156:157] = kind
    put(157, 100, link.encode("utf-8", "surrogateescape"))
    put(257, 8, b"ustar\x0000")
    put(265, 32, b"root")
    put(297, 32, b"root")
    put(329, 8, b"%07o\0" % major)
    put(337, 8, b"%07o\0" % minor)
    put(345, 155, prefix.encode("utf-8", "surrogateescape"))
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def member(header: bytes, data: bytes = b"") -> bytes:
    """A header and its data, padded to whole blocks."""
    return header + data + bytes(-len(data) % BLOCK)


def file_member(name: str, data: bytes = b"", **kw: object) -> bytes:
    return member(ustar(name, size=len(data), **kw), data)  # type: ignore[arg-type]


def pax_records(records: dict[str, str] | Iterable[tuple[str, str]]) -> bytes:
    """PAX extended header records (`<length> <key>=<value>\\n`, length counting itself)."""
    items = records.items() if isinstance(records, dict) else records
    out = b""
    for key, value in items:
        body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length = len(str(length)) + len(body)
        out += str(length).encode() + body
    return out


def pax(records: dict[str, str] | Iterable[tuple[str, str]], *, kind: bytes = b"x") -> bytes:
    """A PAX header member (`x` for the next entry, `g` global) holding `records`."""
    data = pax_records(records)
    return member(ustar("././@PaxHeader", kind=kind, size=len(data)), data)


def raw_pax(data: bytes, *, kind: bytes = b"x") -> bytes:
    """A PAX header member with verbatim (possibly malformed) record bytes."""
    return member(ustar("././@PaxHeader", kind=kind, size=len(data)), data)


def gnu_long_name(name: str, then: bytes) -> bytes:
    """A GNU `L` header carrying `name` for the member `then` (whose own name is ignored)."""
    data = name.encode() + b"\0"
    header = ustar("././@LongLink", kind=tarfile.GNUTYPE_LONGNAME, size=len(data))
    return member(header, data) + then


def tar_of(entries: Iterable[Entry]) -> bytes:
    return build_tar(list(entries))


# --- layers ---------------------------------------------------------------------------------


def layer(tar: bytes, compression: Compression = "gzip") -> Layer:
    """A layer whose config diff_id is the true digest of `tar`."""
    return Layer(tar, compress(tar, compression), LAYER_TYPES[("oci", compression)])


def raw_layer(blob: bytes, media_type: str, diff_id: str) -> Layer:
    """A layer of arbitrary blob bytes, labelled `media_type`, whose config names `diff_id`
    (correct or deliberately not): for garbage, truncated and bomb blobs."""
    return Layer(b"", blob, media_type, claimed_diff_id=diff_id)


def sha256_hex(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def truncated(tar: bytes, compression: Compression, keep: float) -> Layer:
    """`tar` compressed, then cut to `keep` of its length; the diff_id is that of `tar`."""
    blob = compress(tar, compression)
    return raw_layer(blob[: int(len(blob) * keep)], LAYER_TYPES[("oci", compression)], _id(tar))


def garbage(magic: bytes, size: int, media_type: str, *, seed: int = 7) -> Layer:
    """`magic` then pseudo-random bytes (repeatable: the same seed gives the same blob)."""
    noise = b"".join(hashlib.sha256(b"%d:%d" % (seed, i)).digest() for i in range(size // 32))
    return raw_layer(magic + noise, media_type, sha256_hex(noise))


def _id(tar: bytes) -> str:
    return sha256_hex(tar)


# --- bombs ----------------------------------------------------------------------------------

ZERO_CHUNK = 64 << 20


def zeros_bomb(compression: Compression, total: int = 1 << 30, *, head: bytes = b"") -> Layer:
    """A layer expanding to `head` + zeros, `total` bytes in all, from a small blob: one
    compressed chunk of zeros repeated (concatenated gzip members or zstd frames are one
    valid stream). All zeros after `head` read as tar end-of-archive blocks, so only a cap on
    the expanded stream stops the reader from inflating all of it."""
    assert total % ZERO_CHUNK == 0
    assert len(head) <= ZERO_CHUNK
    rest = compress(bytes(ZERO_CHUNK), compression)
    first = compress(head + bytes(ZERO_CHUNK - len(head)), compression) if head else rest
    blob = first + rest * (total // ZERO_CHUNK - 1)
    return raw_layer(blob, LAYER_TYPES[("oci", compression)], _zeros_digest(head, total))


@functools.cache
def _zeros_digest(head: bytes, total: int) -> str:
    """The digest of `head` + zeros, `total` bytes, hashed chunk by chunk."""
    digest = hashlib.sha256(head + bytes(ZERO_CHUNK - len(head)))
    zero = bytes(ZERO_CHUNK)
    for _ in range(total // ZERO_CHUNK - 1):
        digest.update(zero)
    return "sha256:" + digest.hexdigest()


def many_entries(count: int, directory: str = "bomb") -> bytes:
    """A tar of `count` empty files (one header block each, 512 bytes a piece)."""
    template = ustar(f"{directory}/000000000")
    name_at = len(directory) + 1
    chunks = [member(ustar(directory, kind=tarfile.DIRTYPE, mode=0o755))]
    for index in range(count):
        block = bytearray(template)
        block[name_at : name_at + 9] = b"%09d" % index
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\0 " % sum(block)
        chunks.append(bytes(block))
    return b"".join(chunks) + END


def deflate_garbage(size: int) -> bytes:
    """A gzip header followed by bytes that are no valid deflate stream."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + b"\xff" * 8 + bytes(range(256)) * (size // 256)
