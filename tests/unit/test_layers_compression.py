"""Media types, magic bytes, decompressors and the decompression cap."""

from __future__ import annotations

import gzip
import io

import pytest
import zstandard

from ducc.errors import HostileLayer, ManifestError, VerificationError
from ducc.layers import compression
from ducc.layers.compression import Decompressed, ZstdFrames, compression_for
from ducc.oci.model import Compression
from tests.support.layer_tars import f, gz, tar_bytes, zst

PAYLOAD = tar_bytes([f("a", b"x" * 300_000), f("b", b"hello")])


def _read_all(reader: Decompressed) -> bytes:
    parts = []
    while chunk := reader.read(65536):
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [
        ("application/vnd.oci.image.layer.v1.tar", Compression.NONE),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Compression.GZIP),
        ("application/vnd.oci.image.layer.v1.tar+zstd", Compression.ZSTD),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression.GZIP),
    ],
)
def test_media_types_choose_compression(media_type: str, expected: Compression) -> None:
    assert compression_for(media_type) is expected


@pytest.mark.parametrize(
    ("media_type", "words"),
    [
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "foreign"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "non-distributable"),
        ("application/vnd.oci.image.layer.v1.tar+bzip2", "unsupported layer media type"),
        ("application/vnd.oci.image.config.v1+json", "unsupported layer media type"),
    ],
)
def test_unusable_media_types_are_refused_clearly(media_type: str, words: str) -> None:
    with pytest.raises(ManifestError, match=words):
        compression_for(media_type)


@pytest.mark.parametrize(
    ("kind", "blob"),
    [
        (Compression.NONE, PAYLOAD),
        (Compression.GZIP, gz(PAYLOAD)),
        (Compression.ZSTD, zst(PAYLOAD)),
    ],
)
def test_each_compression_round_trips(kind: Compression, blob: bytes) -> None:
    reader = Decompressed(io.BytesIO(blob), kind, name="L")
    assert _read_all(reader) == PAYLOAD
    assert reader.count == len(PAYLOAD)


def test_gzip_goes_through_isal_when_installed() -> None:
    assert compression._igzip is not None
    assert compression._igzip.__name__ == "isal.igzip"


def test_multi_member_gzip_and_zero_padding_are_read_whole() -> None:
    blob = gz(PAYLOAD[:5000]) + gz(PAYLOAD[5000:]) + bytes(64)
    assert _read_all(Decompressed(io.BytesIO(blob), Compression.GZIP, name="L")) == PAYLOAD


def test_zstd_frames_and_skippable_frames_are_read_whole() -> None:
    skippable = b"\x50\x2a\x4d\x18" + (3).to_bytes(4, "little") + b"abc"
    blob = zst(PAYLOAD[:5000]) + skippable + zst(PAYLOAD[5000:])
    assert _read_all(Decompressed(io.BytesIO(blob), Compression.ZSTD, name="L")) == PAYLOAD


@pytest.mark.parametrize(
    ("kind", "blob", "found"),
    [
        (Compression.GZIP, PAYLOAD, "none"),
        (Compression.ZSTD, gz(PAYLOAD), "gzip"),
        (Compression.NONE, zst(PAYLOAD), "zstd"),
        (Compression.NONE, gz(PAYLOAD), "gzip"),
        (Compression.GZIP, b"", "none"),
    ],
)
def test_magic_bytes_must_match_the_media_type(kind: Compression, blob: bytes, found: str) -> None:
    with pytest.raises(VerificationError, match=f"media type says {kind} but the data is {found}"):
        Decompressed(io.BytesIO(blob), kind, name="sha256:abc")


def test_truncated_gzip_is_an_error() -> None:
    blob = gz(PAYLOAD)
    reader = Decompressed(io.BytesIO(blob[: len(blob) // 2]), Compression.GZIP, name="L1")
    with pytest.raises(VerificationError, match="layer L1: corrupt gzip data"):
        _read_all(reader)


def test_truncated_zstd_is_an_error_not_a_short_read() -> None:
    blob = zst(PAYLOAD)
    reader = Decompressed(io.BytesIO(blob[: len(blob) - 7]), Compression.ZSTD, name="L1")
    with pytest.raises(VerificationError, match="ends in the middle of a frame"):
        _read_all(reader)


def test_zstd_garbage_is_an_error() -> None:
    blob = b"\x28\xb5\x2f\xfd" + b"\xff" * 200
    with pytest.raises(VerificationError, match="corrupt zstd data"):
        _read_all(Decompressed(io.BytesIO(blob), Compression.ZSTD, name="L1"))


@pytest.mark.parametrize(
    "blob",
    [
        gzip.compress(bytes(50_000_000)),
        zstandard.ZstdCompressor(level=19).compress(bytes(50_000_000)),
    ],
)
def test_decompression_bomb_is_cut_at_the_cap(blob: bytes) -> None:
    kind = Compression.GZIP if blob[:2] == b"\x1f\x8b" else Compression.ZSTD
    reader = Decompressed(io.BytesIO(blob), kind, name="L1", max_bytes=3_000_000)
    with pytest.raises(HostileLayer, match="expands to more than 3000000 bytes") as caught:
        _read_all(reader)
    assert caught.value.layer == "L1"
    assert reader.count < 3_000_000 + (2 << 20)


def test_zstd_frame_tracker_knows_complete_from_cut() -> None:
    blob = zst(b"some data" * 1000)
    frames = ZstdFrames()
    frames.feed(blob[:10])
    assert not frames.complete
    frames.feed(blob[10:])
    assert frames.complete
