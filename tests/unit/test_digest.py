"""Digests, ChainIDs and the verifying reader."""

from __future__ import annotations

import hashlib
import io

import pytest

from ducc.errors import BadReference, DigestMismatch, SizeMismatch
from ducc.oci.digest import Digest, VerifyingReader, chain_ids


def test_parse_and_format() -> None:
    text = "sha256:" + "0" * 64
    digest = Digest.parse(text)
    assert (str(digest), digest.prefix) == (text, "00")
    with pytest.raises(BadReference, match="needs 64 hex"):
        Digest.parse("sha256:00")


def test_chain_ids_follow_the_image_spec() -> None:
    d1, d2, d3 = (Digest.of(x) for x in (b"a", b"b", b"c"))
    c = chain_ids([d1, d2, d3])
    assert c[0] == d1
    want2 = hashlib.sha256(f"{d1} {d2}".encode()).hexdigest()
    assert c[1].hex == want2
    assert c[2].hex == hashlib.sha256(f"{c[1]} {d3}".encode()).hexdigest()


def test_verifying_reader_accepts_matching_content() -> None:
    data = b"x" * 100_000
    reader = VerifyingReader(io.BytesIO(data), Digest.of(data), len(data), "blob")
    assert reader.read(10) == b"x" * 10
    reader.drain()
    reader.verify()
    assert reader.count == len(data)


def test_verifying_reader_detects_flipped_byte() -> None:
    data = bytearray(b"y" * 1000)
    digest = Digest.of(bytes(data))
    data[500] ^= 1
    reader = VerifyingReader(io.BytesIO(bytes(data)), digest, len(data), "blob")
    reader.drain()
    with pytest.raises(DigestMismatch, match="blob: digest mismatch"):
        reader.verify()


def test_verifying_reader_stops_an_overlong_body() -> None:
    data = b"z" * 10
    reader = VerifyingReader(io.BytesIO(data + b"more" * 1000), Digest.of(data), 10, "blob")
    reader.drain()
    assert reader.count == 11
    with pytest.raises(SizeMismatch, match="expected 10 bytes, got 11"):
        reader.verify()


def test_verifying_reader_detects_short_body() -> None:
    data = b"z" * 10
    reader = VerifyingReader(io.BytesIO(data[:5]), Digest.of(data), 10, "blob")
    reader.drain()
    with pytest.raises(SizeMismatch):
        reader.verify()
