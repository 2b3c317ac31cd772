"""Content digests (`algorithm:hex`, OCI image-spec `descriptor.md`): parsing and hashing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from ducc.errors import BadReference, DigestMismatch, SizeMismatch


class BinaryReadable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


class ReadableStream:
    """`readinto` and `readable` for a class that defines `read`, as file-like consumers
    (decompressors, copy loops) may ask for them, and `drain` (read to the end)."""

    def readinto(self: BinaryReadable, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def drain(self: BinaryReadable, chunk: int = 1 << 20) -> None:
        while self.read(chunk):
            pass


# Registered algorithms and the exact length of their lowercase hex encoding.
HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*")
_HEX = re.compile(r"[a-f0-9]+")


def digest_problem(text: str) -> str | None:
    """Why `text` is not a valid digest, or None when it is."""
    algorithm, colon, encoded = text.partition(":")
    if not colon:
        return f"digest {text!r} has no algorithm (expected e.g. sha256:<64 hex>)"
    if not _ALGORITHM.fullmatch(algorithm):
        return f"digest {text!r}: bad algorithm {algorithm!r}"
    if algorithm not in HEX_LENGTHS:
        known = ", ".join(sorted(HEX_LENGTHS))
        return f"digest {text!r}: unsupported algorithm {algorithm!r} (supported: {known})"
    want = HEX_LENGTHS[algorithm]
    if not encoded:
        return f"digest {text!r}: empty hex part"
    if not _HEX.fullmatch(encoded):
        return f"digest {text!r}: hex part must be lowercase hexadecimal"
    if len(encoded) != want:
        return f"digest {text!r}: {algorithm} needs {want} hex characters, got {len(encoded)}"
    return None


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        problem = digest_problem(text)
        if problem:
            raise BadReference(problem)
        algorithm, _, encoded = text.partition(":")
        return cls(algorithm, encoded)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """The digest of `data`."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def from_string(cls, text: str) -> Digest:
        """sha256 of a string, as the OCI ChainID formula digests `"<a> <b>"`."""
        return cls.of(text.encode())

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm, for streaming verification."""
        return hashlib.new(self.algorithm)

    @property
    def prefix(self) -> str:
        """The two-character shard directory used in the repository layout (`.layers/ab/`)."""
        return self.hex[:2]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """OCI ChainIDs (image-spec `config.md`): ChainID(L0) = DiffID(L0);
    ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))."""
    chains: list[Digest] = []
    for diff_id in diff_ids:
        chains.append(Digest.from_string(f"{chains[-1]} {diff_id}") if chains else diff_id)
    return chains


class VerifyingReader(ReadableStream):
    """A readable stream that hashes and counts what passes through it.

    `verify()` (called by the consumer after draining) raises `DigestMismatch` or
    `SizeMismatch`; reading past `size` stops early so an endless body cannot be consumed.
    """

    def __init__(self, raw: BinaryReadable, expected: Digest, size: int | None, what: str) -> None:
        self._raw = raw
        self._hash = expected.hasher()
        self.expected = expected
        self.size = size
        self.what = what
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        if self.size is not None:
            remaining = self.size - self.count + 1  # one byte more reveals an overlong body
            n = remaining if n < 0 else min(n, remaining)
            if n <= 0:
                return b""
        data = self._raw.read(n)
        self._hash.update(data)
        self.count += len(data)
        return data

    @property
    def actual(self) -> Digest:
        return Digest(self.expected.algorithm, self._hash.hexdigest())

    def verify(self) -> None:
        if self.size is not None and self.count != self.size:
            raise SizeMismatch(self.what, self.size, self.count)
        if self.actual != self.expected:
            raise DigestMismatch(self.what, str(self.expected), str(self.actual))
