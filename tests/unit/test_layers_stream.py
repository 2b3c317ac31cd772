"""LayerStream: one pass verifies the blob digest and size and the diff_id."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest

from ducc.errors import DigestMismatch, HostileLayer, SizeMismatch, VerificationError
from ducc.layers.apply import apply_layer
from ducc.layers.stream import LayerStream, ReadAhead
from ducc.oci.digest import Digest
from tests.support.layer_tars import TAR, TAR_GZIP, TAR_ZSTD, f, gz, tar_bytes, zst

TAR_DATA = tar_bytes([f("etc/os-release", b"ID=test\n"), f("big", b"z" * 3_000_000)])


def _drain(stream: LayerStream) -> bytes:
    parts = []
    while chunk := stream.read(100_000):
        parts.append(chunk)
    return b"".join(parts)


@pytest.mark.parametrize(
    ("media_type", "blob"),
    [(TAR, TAR_DATA), (TAR_GZIP, gz(TAR_DATA)), (TAR_ZSTD, zst(TAR_DATA))],
)
def test_stream_yields_the_tar_and_measures_both_digests(media_type: str, blob: bytes) -> None:
    stream = LayerStream(
        io.BytesIO(blob),
        media_type,
        blob=Digest.of(blob),
        size=len(blob),
        diff_id=Digest.of(TAR_DATA),
        name="L",
    )
    assert _drain(stream) == TAR_DATA
    digests = stream.finish()
    assert (digests.blob, digests.size) == (Digest.of(blob), len(blob))
    assert (digests.diff_id, digests.diff_size) == (Digest.of(TAR_DATA), len(TAR_DATA))


def test_digests_are_computed_when_none_is_expected() -> None:
    blob = gz(TAR_DATA)
    stream = LayerStream(io.BytesIO(blob), TAR_GZIP, name="L")
    digests = stream.finish()  # finish drains what nobody read
    assert digests.diff_id == Digest.of(TAR_DATA)
    assert digests.blob == Digest.of(blob)


def test_wrong_diff_id_names_the_layer() -> None:
    blob = gz(TAR_DATA)
    stream = LayerStream(
        io.BytesIO(blob), TAR_GZIP, blob=Digest.of(blob), diff_id=Digest.of(b"x"), name="sha256:aa"
    )
    with pytest.raises(DigestMismatch, match="layer sha256:aa diff_id: digest mismatch"):
        stream.finish()


def test_wrong_blob_digest_names_the_layer() -> None:
    blob = gz(TAR_DATA)
    stream = LayerStream(io.BytesIO(blob), TAR_GZIP, blob=Digest.of(b"other"), name="sha256:bb")
    with pytest.raises(DigestMismatch, match="layer sha256:bb: digest mismatch"):
        stream.finish()


def test_wrong_size_is_a_size_mismatch_even_without_digest() -> None:
    stream = LayerStream(io.BytesIO(TAR_DATA), TAR, size=len(TAR_DATA) - 1, name="L")
    with pytest.raises(SizeMismatch, match="expected"):
        stream.finish()


def test_damaged_download_is_reported_as_digest_mismatch_not_as_bad_tar(tmp_path: Path) -> None:
    blob = bytearray(TAR_DATA)
    blob[0:10] = b"\xff" * 10  # a broken first header
    stream = LayerStream(
        io.BytesIO(bytes(blob)), TAR, blob=Digest.of(TAR_DATA), size=len(blob), name="sha256:cc"
    )
    with pytest.raises(DigestMismatch, match="layer sha256:cc"):
        apply_layer(tmp_path, stream, name="sha256:cc")


def test_bad_tar_with_right_digest_stays_a_tar_error(tmp_path: Path) -> None:
    blob = bytearray(TAR_DATA)
    blob[0:10] = b"\xff" * 10
    data = bytes(blob)
    stream = LayerStream(io.BytesIO(data), TAR, blob=Digest.of(data), size=len(data), name="L")
    with pytest.raises(HostileLayer, match="malformed tar header"):
        apply_layer(tmp_path, stream, name="L")


def test_limit_caps_the_expanded_stream() -> None:
    blob = gz(bytes(20_000_000))
    stream = LayerStream(io.BytesIO(blob), TAR_GZIP, name="L")
    stream.limit(1_000_000)
    with pytest.raises(HostileLayer, match="expands to more than 1000000"):
        _drain(stream)
    stream.close()


class _Failing:
    def __init__(self) -> None:
        self.calls = 0

    def read(self, n: int = -1, /) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise OSError("connection reset")
        return b"x" * 10


def test_read_ahead_hands_errors_to_the_reader() -> None:
    ahead = ReadAhead(_Failing(), chunk=10)
    assert ahead.read() == b"x" * 10
    assert ahead.read(4) == b"x" * 4
    assert ahead.read() == b"x" * 6
    with pytest.raises(OSError, match="connection reset"):
        ahead.read()
    ahead.close()


def test_read_ahead_stops_when_closed_early() -> None:
    endless = io.BytesIO(b"y" * 50_000_000)
    ahead = ReadAhead(endless, chunk=1000, depth=2)
    assert ahead.read(5) == b"yyyyy"
    ahead.close()
    assert endless.tell() < 50_000_000


class _SelfVerifying(io.BytesIO):
    """Like the registry client's blob stream: raises at its end when the digest is wrong."""

    def __init__(self, data: bytes, good: bool) -> None:
        super().__init__(data)
        self.good = good

    def read(self, n: int | None = -1, /) -> bytes:
        data = super().read(n)
        if not data and not self.good:
            raise DigestMismatch("blob x", "sha256:want", "sha256:got")
        return data


@pytest.mark.parametrize("good", [True, False])
def test_a_self_verifying_blob_is_not_hashed_twice(good: bool) -> None:
    blob = gz(TAR_DATA)
    expected = Digest.of(b"what the manifest says")  # not hashed again: taken as verified
    stream = LayerStream(
        _SelfVerifying(blob, good), TAR_GZIP, blob=expected, blob_verified=True, name="L"
    )
    if not good:
        with pytest.raises(DigestMismatch, match="blob x"):
            stream.finish()
        return
    digests = stream.finish()
    assert (digests.blob, digests.size) == (expected, len(blob))
    assert digests.diff_id == Digest.of(TAR_DATA)


def test_a_refused_entry_does_not_download_the_rest_of_the_blob(tmp_path: Path) -> None:
    data = tar_bytes([f("../x"), f("big", bytes(40_000_000))])
    raw = io.BytesIO(data)
    stream = LayerStream(raw, TAR, blob=Digest.of(b"wrong"), size=len(data), name="L")
    with pytest.raises(HostileLayer, match=r"'\.\.'"):
        apply_layer(tmp_path, stream, name="L")
    assert raw.tell() < 20_000_000


def test_a_stream_refused_at_its_magic_bytes_leaves_no_thread_reading() -> None:
    """The magic bytes are read before any helper thread starts; a refusal there leaves
    none reading the blob."""
    raw = io.BytesIO(b"not gzip" * 1_000_000)
    with pytest.raises(VerificationError, match="media type says gzip"):
        LayerStream(raw, TAR_GZIP, name="L")
    assert not [t for t in threading.enumerate() if t.name.startswith("layer-")]
    position = raw.tell()
    time.sleep(0.2)
    assert raw.tell() == position  # nothing reads the blob any more
