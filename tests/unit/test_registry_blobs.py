"""Blobs stream verified, resume with Range from the registry, and never leak auth to a CDN."""

from __future__ import annotations

import gzip
import os
import tarfile
from pathlib import Path

import pytest
import requests
import responses

from ducc.errors import DigestMismatch, RegistryError, SizeMismatch, TransientError
from ducc.oci.digest import Digest
from ducc.oci.model import OCI_LAYER_GZIP, Descriptor
from ducc.registry.blobs import READ_SIZE, download_blob, open_blob
from ducc.registry.client import RegistryClient
from tests.support.fake_registry import FakeRegistry, Reply, broken_body
from tests.support.images import file, make_layer
from tests.unit.conftest import FakeTime, MakeRegistries

DATA = os.urandom(200_000)
CUT = 131_072  # the connection breaks after 128 KiB of the 200,000 bytes
DESCRIPTOR = Descriptor(OCI_LAYER_GZIP, Digest.of(DATA), len(DATA))
BLOB_URL = f"https://registry.test/v2/team/app/blobs/{DESCRIPTOR.digest}"
CDN = "https://cdn.test/blob"


def client_for(make_registries: MakeRegistries) -> RegistryClient:
    return make_registries().for_host("https", "registry.test")


def read_all(client: RegistryClient, got: list[bytes], chunk: int = 1000) -> bytes:
    with open_blob(client, "team/app", DESCRIPTOR) as blob:
        while data := blob.read(chunk):
            got.append(data)
    return b"".join(got)


def test_blob_streams_through_readinto(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).blob("team/app", DATA)
    buffer = bytearray(4096)
    out = bytearray()
    with open_blob(client_for(make_registries), "team/app", DESCRIPTOR) as blob:
        while n := blob.readinto(buffer):
            out += buffer[:n]
    assert bytes(out) == DATA


def test_digest_mismatch_withholds_the_last_bytes(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    tampered = DATA[:-1] + bytes([DATA[-1] ^ 1])
    FakeRegistry(rsps).blob("team/app", DATA, served=tampered)
    got: list[bytes] = []
    with pytest.raises(DigestMismatch, match=r"digest mismatch: expected sha256:"):
        read_all(client_for(make_registries), got)
    assert sum(map(len, got)) == len(DATA) - 1000  # the chunk reaching the end never came


def test_finish_verifies_what_the_consumer_left_unread(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).blob("team/app", DATA, served=DATA[:-1] + bytes([DATA[-1] ^ 1]))
    with open_blob(client_for(make_registries), "team/app", DESCRIPTOR) as blob:
        blob.read(100)
        assert not blob.verified
        with pytest.raises(DigestMismatch):
            blob.finish()
        with pytest.raises(DigestMismatch):  # and it stays failed
            blob.read(1)


def test_announced_wrong_length_is_refused_before_reading(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).blob("team/app", DATA, served=DATA + b"more")
    with pytest.raises(SizeMismatch, match="expected 200000 bytes, got 200004"):
        read_all(client_for(make_registries), [])


def test_overlong_body_without_length_is_caught_at_the_end(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add_callback(
        "GET", BLOB_URL, callback=lambda _r: (200, {}, broken_body(DATA + b"x", len(DATA) + 1))
    )
    got: list[bytes] = []
    with pytest.raises(SizeMismatch, match="expected 200000 bytes, got 200001"):
        read_all(client_for(make_registries), got)
    assert sum(map(len, got)) < len(DATA)


def ranged(data: bytes, cut: int, requests_seen: list[requests.PreparedRequest]) -> object:
    """A blob endpoint that breaks at `cut` and honours `Range: bytes=N-` with 206."""

    def reply(request: requests.PreparedRequest) -> Reply:
        requests_seen.append(request)
        wanted = request.headers.get("Range")
        if wanted is None:
            return 200, {}, broken_body(data, cut)
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        content_range = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return 206, {"Content-Range": content_range}, data[start:]

    return reply


def test_broken_transfer_resumes_with_range(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    seen: list[requests.PreparedRequest] = []
    rsps.add_callback("GET", BLOB_URL, callback=ranged(DATA, CUT, seen))  # type: ignore[arg-type]
    with open_blob(client_for(make_registries), "team/app", DESCRIPTOR) as blob:
        assert blob.readall() == DATA
        assert blob.resumes == 1
    first, second = seen
    assert "Range" not in first.headers
    assert second.headers["Range"] == f"bytes={CUT}-"
    assert len(fake_time.sleeps) == 1  # a short pause before resuming


def test_resume_asks_the_registry_again_not_the_cdn(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    signatures = iter(["sig=1", "sig=2"])
    seen: list[requests.PreparedRequest] = []
    rsps.add_callback(
        "GET",
        BLOB_URL,
        callback=fake.guarded(lambda _r: (307, {"Location": f"{CDN}?{next(signatures)}"}, b"")),
    )
    rsps.add_callback("GET", CDN, callback=ranged(DATA, CUT, seen))  # type: ignore[arg-type]
    with open_blob(client_for(make_registries), "team/app", DESCRIPTOR) as blob:
        assert blob.readall() == DATA
    hosts = [
        (c.request.url or "").split("/")[2]
        for c in rsps.calls
        if "blobs" in (c.request.url or "") or "cdn" in (c.request.url or "")
    ]
    assert hosts == ["registry.test", "cdn.test", "registry.test", "cdn.test"]
    assert [(r.url or "").rpartition("?")[2] for r in seen] == ["sig=1", "sig=2"]
    assert seen[1].headers["Range"] == f"bytes={CUT}-"


def test_cross_host_redirect_carries_no_authorization(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    rsps.add_callback(
        "GET", BLOB_URL, callback=fake.guarded(lambda _r: (307, {"Location": CDN}, b""))
    )
    rsps.add("GET", CDN, body=DATA)
    assert read_all(client_for(make_registries), []) == DATA
    (registry_call,) = fake.calls("GET", "/blobs/")
    (cdn_call,) = fake.calls("GET", "cdn.test")
    assert registry_call.request.headers["Authorization"] == "Bearer tok-1"
    assert "Authorization" not in cdn_call.request.headers


def test_resume_answered_with_200_is_an_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", BLOB_URL, body=broken_body(DATA, CUT))
    rsps.add("GET", BLOB_URL, body=DATA)  # Range ignored: the whole blob again
    with pytest.raises(RegistryError, match=f"cannot resume at byte {CUT} \\(HTTP 200"):
        read_all(client_for(make_registries), [], chunk=READ_SIZE)


def test_resume_with_a_wrong_content_range_is_an_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", BLOB_URL, body=broken_body(DATA, CUT))
    whole = {"Content-Range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}"}
    rsps.add("GET", BLOB_URL, status=206, body=DATA, headers=whole)
    with pytest.raises(RegistryError, match=f"cannot resume at byte {CUT}"):
        read_all(client_for(make_registries), [], chunk=READ_SIZE)


def test_a_transfer_that_never_progresses_gives_up(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", BLOB_URL, body=broken_body(DATA, CUT))
    rest = {"Content-Range": f"bytes {CUT}-{len(DATA) - 1}/{len(DATA)}"}
    rsps.add_callback("GET", BLOB_URL, callback=lambda _r: (206, rest, broken_body(b"", 0)))
    with pytest.raises(TransientError, match=f"transfer broke at byte {CUT} of 200000") as info:
        read_all(client_for(make_registries), [], chunk=READ_SIZE)
    # The message says why it broke (here: reset), not only where.
    assert "connection reset by peer" in str(info.value)
    assert "gave up after 3 resumes" in str(info.value)


def test_download_blob_renames_only_verified_content(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    fake = FakeRegistry(rsps)
    fake.blob("team/app", DATA)
    dest = tmp_path / "cache" / DESCRIPTOR.digest.hex
    download_blob(client_for(make_registries), "team/app", DESCRIPTOR, dest)
    assert dest.read_bytes() == DATA
    assert os.listdir(dest.parent) == [dest.name]


def test_download_blob_keeps_nothing_on_mismatch(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    FakeRegistry(rsps).blob("team/app", DATA, served=bytes(len(DATA)))
    dest = tmp_path / "blob"
    with pytest.raises(DigestMismatch):
        download_blob(client_for(make_registries), "team/app", DESCRIPTOR, dest)
    assert os.listdir(tmp_path) == []


def test_a_gzip_layer_reads_through_standard_decompressors(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    layer = make_layer([file("etc/hostname", "box"), file("big", os.urandom(300_000))])
    descriptor = Descriptor(layer.media_type, Digest.parse(layer.digest), len(layer.blob))
    FakeRegistry(rsps).blob("team/app", layer.blob)
    with (
        open_blob(client_for(make_registries), "team/app", descriptor) as blob,
        gzip.GzipFile(fileobj=blob) as tar_stream,
        tarfile.open(fileobj=tar_stream, mode="r|") as tar,
    ):
        names = [member.name for member in tar]
        blob.finish()  # the tar reader stops at the end-of-archive blocks
        assert blob.verified
    assert names == ["etc/hostname", "big"]
