"""Manifests are verified, schema 1 is refused, and an index yields the right platforms."""

from __future__ import annotations

import json

import pytest
import responses
from structlog.testing import capture_logs

from ducc.errors import DigestMismatch, ManifestError, NoMatchingPlatform, SizeMismatch
from ducc.oci.digest import Digest
from ducc.oci.model import MANIFEST_ACCEPT, ImageIndex, ImageManifest
from ducc.oci.platform import Platform, parse_platform
from ducc.oci.reference import parse_reference
from ducc.registry.manifests import get_manifest, head_digest, resolve
from tests.support.fake_registry import FakeRegistry
from tests.support.images import Image, file, make_image, make_index, make_layer, sha256
from tests.unit.conftest import MakeRegistries

LAYER = make_layer([file("etc/os-release", "ID=test")])
AMD64 = make_image([LAYER])
ARM64 = make_image([LAYER], architecture="arm64", variant="v8")
ARM32 = make_image([LAYER], architecture="arm", variant="v7")
ATTESTATION = {
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": sha256(b"attestation"),
    "size": 11,
    "platform": {"os": "unknown", "architecture": "unknown"},
    "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
}
INDEX = make_index([AMD64, ARM64, ARM32], extra=[ATTESTATION])
REF = parse_reference("registry.test/team/app:v1")


def serve_index(rsps: responses.RequestsMock) -> FakeRegistry:
    fake = FakeRegistry(rsps, auth="bearer")
    fake.index("team/app", "v1", INDEX)
    return fake


def test_get_manifest_asks_for_all_four_types(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    fake.image("team/app", "v1", AMD64)
    manifest = get_manifest(make_registries().client(REF), "team/app", "v1")
    assert isinstance(manifest, ImageManifest)
    (call,) = fake.calls("GET", "/manifests/v1")
    assert call.request.headers["Accept"] == MANIFEST_ACCEPT


def test_manifest_fetched_by_digest_is_verified(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    other = make_image([LAYER], env=["X=1"])
    fake.manifest(
        "team/app", AMD64.digest, other.manifest, other.manifest_type, digest_header=False
    )
    with pytest.raises(DigestMismatch, match=f"expected {AMD64.digest}, got {other.digest}"):
        get_manifest(make_registries().client(REF), "team/app", Digest.parse(AMD64.digest))


def test_docker_content_digest_header_must_match_the_body(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    url = f"{fake.base}/v2/team/app/manifests/v1"
    headers = {"Content-Type": AMD64.manifest_type, "Docker-Content-Digest": ARM64.digest}
    rsps.add("GET", url, body=AMD64.manifest, headers=headers)
    with pytest.raises(DigestMismatch, match="Docker-Content-Digest"):
        get_manifest(make_registries().client(REF), "team/app", "v1")


def test_schema1_gets_a_clear_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    body = json.dumps({"schemaVersion": 1, "name": "team/app", "tag": "v1", "fsLayers": []})
    media = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    fake.manifest("team/app", "v1", body.encode(), media)
    with pytest.raises(ManifestError, match="schema 1 manifest, which is deprecated"):
        resolve(make_registries().client(REF), REF)


def test_head_digest_reads_the_header(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = serve_index(rsps)
    assert str(head_digest(make_registries().client(REF), REF)) == INDEX.digest
    assert not fake.calls("GET", "/manifests/")


def test_head_without_a_digest_header_gives_none(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    fake.manifest("team/app", "v1", b"", AMD64.manifest_type, digest_header=False, method="HEAD")
    assert head_digest(make_registries().client(REF), REF) is None


def test_index_resolves_to_linux_amd64_by_default(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    serve_index(rsps)
    (image,) = resolve(make_registries().client(REF), REF)
    assert image.platform == Platform("linux", "amd64")
    assert str(image.manifest.digest) == AMD64.digest
    assert str(image.config.digest) == AMD64.config_digest
    assert isinstance(image.index, ImageIndex)
    assert str(image.digest) == INDEX.digest


@pytest.mark.parametrize(
    ("platform", "want"),
    [("linux/arm64", ARM64), ("linux/arm64/v8", ARM64), ("linux/arm/v7", ARM32)],
)
def test_platform_option_picks_the_entry(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, platform: str, want: Image
) -> None:
    serve_index(rsps)
    (image,) = resolve(make_registries().client(REF), REF, platform=parse_platform(platform))
    assert str(image.manifest.digest) == want.digest


def test_multi_arch_takes_every_platform_but_attestations(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = serve_index(rsps)
    images = resolve(make_registries().client(REF), REF, multi_arch=True)
    assert [i.platform.label for i in images] == ["amd64", "arm64", "arm:v7"]
    assert not fake.calls("GET", ATTESTATION["digest"])  # type: ignore[arg-type]


def test_missing_platform_lists_what_the_index_has(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    serve_index(rsps)
    with pytest.raises(
        NoMatchingPlatform,
        match=r"no manifest for linux/s390x \(it has: "
        r"linux/amd64, linux/arm/v7, linux/arm64\)",
    ):
        resolve(make_registries().client(REF), REF, platform=parse_platform("linux/s390x"))


def test_single_manifest_must_match_an_explicit_platform(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).image("team/app", "v1", ARM64)
    client = make_registries().client(REF)
    (image,) = resolve(client, REF)  # no platform asked: take what is there
    assert image.platform == Platform("linux", "arm64")
    assert image.index is None
    with pytest.raises(NoMatchingPlatform, match="is for linux/arm64, not linux/amd64"):
        resolve(client, REF, platform=parse_platform("linux/amd64"))


def test_config_with_wrong_bytes_is_refused(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    fake.manifest("team/app", "v1", AMD64.manifest, AMD64.manifest_type)
    tampered = AMD64.config.replace(b"amd64", b"arm64")
    fake.blob("team/app", AMD64.config, served=tampered)
    with pytest.raises(DigestMismatch, match=r"blob registry\.test/team/app@sha256:"):
        resolve(make_registries().client(REF), REF)


def test_index_entry_size_is_checked(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    doc = json.loads(INDEX.raw)
    doc["manifests"][0]["size"] += 1
    raw = json.dumps(doc).encode()
    fake.manifest("team/app", "v1", raw, INDEX.media_type)
    fake.image("team/app", None, AMD64)
    with pytest.raises(SizeMismatch):
        resolve(make_registries().client(REF), REF)


def test_reference_with_digest_is_pinned(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).image("team/app", None, AMD64)
    ref = parse_reference(f"registry.test/team/app@{AMD64.digest}")
    (image,) = resolve(make_registries().client(ref), ref)
    assert str(image.manifest.digest) == AMD64.digest


def test_an_artifact_config_is_refused_before_it_is_fetched(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    doc = json.loads(AMD64.manifest)
    doc["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    raw = json.dumps(doc).encode()
    fake.manifest("team/app", "v1", raw, AMD64.manifest_type)
    fake.blob("team/app", AMD64.config)
    with pytest.raises(ManifestError, match="not a container image: config media type"):
        resolve(make_registries().client(REF), REF)
    assert not fake.calls("GET", "/blobs/")


def test_a_malformed_manifest_is_named_in_the_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    doc = json.loads(AMD64.manifest)
    del doc["layers"]
    fake.manifest("team/app", "v1", json.dumps(doc).encode(), AMD64.manifest_type)
    expected = r"^manifest registry\.test/team/app@v1: manifest: required field 'layers'"
    with pytest.raises(ManifestError, match=expected):
        resolve(make_registries().client(REF), REF)


def test_a_malformed_config_is_named_in_the_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    config = json.loads(AMD64.config)
    del config["rootfs"]
    image = make_image([LAYER], diff_ids=[LAYER.diff_id])
    doc = json.loads(image.manifest)
    raw_config = json.dumps(config).encode()
    doc["config"].update(digest=sha256(raw_config), size=len(raw_config))
    fake.manifest("team/app", "v1", json.dumps(doc).encode(), image.manifest_type)
    fake.blob("team/app", raw_config)
    expected = rf"^config registry\.test/team/app@{sha256(raw_config)}: image config: required"
    with pytest.raises(ManifestError, match=expected):
        resolve(make_registries().client(REF), REF)


def test_a_pinned_digest_is_fetched_by_digest_though_the_tag_moved(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    moved = make_image([LAYER], env=["MOVED=1"])
    fake.image("team/app", None, AMD64)  # still there by digest
    fake.image("team/app", "v1", moved)  # the tag points elsewhere since the HEAD
    (image,) = resolve(make_registries().client(REF), REF, pinned=Digest.parse(AMD64.digest))
    assert str(image.manifest.digest) == AMD64.digest
    assert fake.calls("GET", "/manifests/v1") == []
    assert len(fake.calls("GET", f"/manifests/{AMD64.digest}")) == 1


def test_a_pinned_digest_answered_with_another_manifest_is_refused(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    other = make_image([LAYER], env=["X=1"])
    fake.manifest("team/app", AMD64.digest, other.manifest, other.manifest_type)
    with pytest.raises(DigestMismatch, match=f"expected {AMD64.digest}, got {other.digest}"):
        resolve(make_registries().client(REF), REF, pinned=Digest.parse(AMD64.digest))


def _index_listing(image: Image, platform: dict[str, str]) -> bytes:
    entry = {**image.descriptor(), "platform": platform}
    doc = {"schemaVersion": 2, "mediaType": INDEX.media_type, "manifests": [entry]}
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("listed", "asked"),
    [
        ({"os": "linux", "architecture": "arm64"}, "linux/arm64"),
        ({"os": "windows", "architecture": "amd64"}, "windows/amd64"),
    ],
)
def test_an_index_entry_whose_config_is_for_another_platform_is_refused(
    rsps: responses.RequestsMock,
    make_registries: MakeRegistries,
    listed: dict[str, str],
    asked: str,
) -> None:
    fake = FakeRegistry(rsps)
    fake.manifest("team/app", "v1", _index_listing(AMD64, listed), INDEX.media_type)
    fake.image("team/app", None, AMD64)
    with pytest.raises(ManifestError, match=rf"listed for {asked}, but its config .* linux/amd64"):
        resolve(make_registries().client(REF), REF, platform=parse_platform(asked))


def test_an_index_entry_with_another_variant_in_its_config_is_taken(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    arm_v6 = make_image([LAYER], architecture="arm", variant="v6")
    fake = FakeRegistry(rsps)
    listed = {"os": "linux", "architecture": "arm", "variant": "v7"}
    fake.manifest("team/app", "v1", _index_listing(arm_v6, listed), INDEX.media_type)
    fake.image("team/app", None, arm_v6)
    with capture_logs() as logs:
        (image,) = resolve(
            make_registries().client(REF), REF, platform=parse_platform("linux/arm/v7")
        )
    (warning,) = [e for e in logs if e["event"] == "platform_variant_differs"]
    assert (warning["index"], warning["config"]) == ("linux/arm/v7", "linux/arm/v6")
    assert image.platform == Platform("linux", "arm", "v7")
    assert str(image.config.digest) == arm_v6.config_digest
