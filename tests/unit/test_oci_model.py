"""The OCI model: manifests, indexes and configs parse when right and fail clearly when not."""

from __future__ import annotations

import json
import re

import pytest

from ducc.errors import ManifestError
from ducc.oci.digest import Digest
from ducc.oci.model import (
    DOCKER_FOREIGN_LAYER_GZIP,
    MANIFEST_ACCEPT,
    Compression,
    ImageIndex,
    ImageManifest,
    check_config_matches,
    layer_compression,
    parse_config,
    parse_manifest,
)
from ducc.oci.platform import Platform
from tests.support.images import file, make_image, make_index, make_layer

LAYER = make_layer([file("a", "1")])
OCI_IMAGE = make_image([LAYER])
DOCKER_IMAGE = make_image([make_layer([file("b", "2")], fmt="docker")], fmt="docker")


def manifest_doc(**changes: object) -> bytes:
    doc = json.loads(OCI_IMAGE.manifest)
    doc.update(changes)
    return json.dumps(doc).encode()


def test_accept_header_lists_all_four_modern_types() -> None:
    for kind in ("image.index", "image.manifest", "manifest.list.v2", "manifest.v2"):
        assert kind in MANIFEST_ACCEPT
    assert "v1+prettyjws" not in MANIFEST_ACCEPT


@pytest.mark.parametrize("image", [OCI_IMAGE, DOCKER_IMAGE], ids=["oci", "docker"])
def test_image_manifest_keeps_raw_bytes_and_digest(image: object) -> None:
    from tests.support.images import Image

    assert isinstance(image, Image)
    manifest = parse_manifest(image.manifest, image.manifest_type)
    assert isinstance(manifest, ImageManifest)
    assert manifest.raw == image.manifest
    assert str(manifest.digest) == image.digest
    assert str(manifest.config.digest) == image.config_digest
    assert [str(x.digest) for x in manifest.layers] == [x.digest for x in image.layers]
    assert manifest.layers[0].size == len(image.layers[0].blob)


@pytest.mark.parametrize("fmt", ["oci", "docker"])
def test_index_entries_carry_normalised_platforms(fmt: str) -> None:
    arm = make_image([LAYER], architecture="arm64", variant="v8")
    index = make_index([OCI_IMAGE, arm], fmt=fmt)  # type: ignore[arg-type]
    parsed = parse_manifest(index.raw, index.media_type)
    assert isinstance(parsed, ImageIndex)
    assert [m.platform for m in parsed.manifests] == [
        Platform("linux", "amd64"),
        Platform("linux", "arm64"),
    ]


@pytest.mark.parametrize(
    ("platform", "message"),
    [
        ({"os": "linux", "architecture": "../../../escaped"}, "architecture '../../../escaped'"),
        ({"os": "linux", "architecture": "arm", "variant": "v7/../.."}, "variant 'v7/../..'"),
        ({"os": "..", "architecture": "amd64"}, "os '..' is not a platform name"),
        ({"os": "linux", "architecture": ""}, "architecture '' is not a platform name"),
        ({"os": "linux", "architecture": "a" * 33}, f"architecture '{'a' * 33}'"),
    ],
)
def test_index_platforms_that_are_no_names_are_refused(
    platform: dict[str, str], message: str
) -> None:
    """`--multi-arch` makes `.multiarch/<architecture>` directories of them."""
    entry = {**OCI_IMAGE.descriptor(), "platform": platform}
    index = make_index([OCI_IMAGE], extra=[entry])
    with pytest.raises(
        ManifestError, match=r"index manifests\[1\] platform: " + re.escape(message)
    ):
        parse_manifest(index.raw, index.media_type)


def test_config_platform_must_be_names_where_given() -> None:
    doc = {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}}
    raw = json.dumps(doc | {"variant": ""}).encode()
    assert parse_config(raw, Digest.of(raw)).platform == Platform("linux", "amd64")
    raw = json.dumps(doc | {"architecture": "amd64/../x"}).encode()
    with pytest.raises(ManifestError, match=re.escape("image config: architecture 'amd64/../x'")):
        parse_config(raw, Digest.of(raw))


def test_content_type_parameters_and_generic_types_are_tolerated() -> None:
    parsed = parse_manifest(OCI_IMAGE.manifest, OCI_IMAGE.manifest_type + "; charset=utf-8")
    assert isinstance(parsed, ImageManifest)
    assert isinstance(parse_manifest(OCI_IMAGE.manifest, "application/json"), ImageManifest)


def test_manifest_without_media_type_is_inferred_from_its_fields() -> None:
    doc = json.loads(OCI_IMAGE.manifest)
    del doc["mediaType"]
    assert isinstance(parse_manifest(json.dumps(doc).encode(), None), ImageManifest)


@pytest.mark.parametrize(
    ("raw", "content_type", "message"),
    [
        (b'{"schemaVersion": 1, "fsLayers": []}', None, "schema 1"),
        (
            OCI_IMAGE.manifest,
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "schema 1",
        ),
        (b"<html>", None, "not valid JSON"),
        (b"[1, 2]", None, "must be a JSON object"),
        (b"\xff\xfe", None, "not UTF-8"),
        (b'{"schemaVersion": 2, "schemaVersion": 2}', None, "duplicate key"),
        (b'{"schemaVersion": 2, "x": ' + b"[" * 100 + b"]" * 100 + b"}", None, "deeper"),
        (b'{"schemaVersion": 2, "x": "' + b"a" * (5 << 20) + b'"}', None, "byte limit"),
        (manifest_doc(schemaVersion="2"), None, "schemaVersion must be 2"),
        (manifest_doc(config=None), None, "'config' is missing"),
        (manifest_doc(layers={}), None, "'layers' must be a list"),
        (manifest_doc(mediaType="application/x-foo"), None, "unsupported manifest media type"),
        (manifest_doc(manifests=[]), None, "ambiguous"),
        (b'{"schemaVersion": 2, "x": NaN}', None, "not valid JSON: NaN is not JSON"),
        (b'{"schemaVersion": 2, "x": -Infinity}', None, "-Infinity is not JSON"),
    ],
)
def test_bad_manifests_are_refused_with_a_clear_message(
    raw: bytes, content_type: str | None, message: str
) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw, content_type)


def test_media_type_field_must_agree_with_content_type() -> None:
    index = make_index([OCI_IMAGE])
    with pytest.raises(ManifestError, match="contradicts the Content-Type"):
        parse_manifest(OCI_IMAGE.manifest, index.media_type)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"size": -1}, "out of range"),
        ({"size": 1 << 50}, "out of range"),
        ({"size": "12"}, "'size' must be an integer"),
        ({"size": True}, "'size' must be an integer"),
        ({"digest": "sha256:abc"}, "needs 64 hex"),
        ({"digest": "md5:" + "0" * 32}, "unsupported algorithm"),
        ({"mediaType": None}, "'mediaType' is missing"),
    ],
)
def test_bad_layer_descriptors_are_refused(change: dict[str, object], message: str) -> None:
    layer = {**LAYER.descriptor(), **change}
    with pytest.raises(ManifestError, match=message) as info:
        parse_manifest(manifest_doc(layers=[layer]), None)
    assert "manifest layers[0]" in str(info.value)


def test_config_fields_are_read() -> None:
    image = make_image([LAYER], entrypoint=["/bin/run"], cmd=None, env=["A=1"])
    config = parse_config(image.config, Digest.parse(image.config_digest))
    assert config.entrypoint == ("/bin/run",)
    assert config.cmd is None
    assert config.env == ("A=1",)
    assert config.platform == Platform("linux", "amd64")
    assert [str(d) for d in config.diff_ids] == [LAYER.diff_id]


def test_config_is_checked_against_its_digest() -> None:
    with pytest.raises(ManifestError, match="digest mismatch"):
        parse_config(OCI_IMAGE.config, Digest.of(b"other"))


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"os": "linux", "architecture": "amd64"}, "'rootfs' is missing"),
        (
            {"os": "linux", "architecture": "amd64", "rootfs": {"type": "x", "diff_ids": []}},
            "rootfs.type",
        ),
        (
            {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [1]}},
            "list of strings",
        ),
        ({"architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": []}}, "'os'"),
        (
            {
                "os": "linux",
                "architecture": "amd64",
                "rootfs": {"type": "layers", "diff_ids": []},
                "config": {"Env": "A=1"},
            },
            "'Env' must be a list of strings",
        ),
    ],
)
def test_bad_configs_are_refused(doc: dict[str, object], message: str) -> None:
    raw = json.dumps(doc).encode()
    with pytest.raises(ManifestError, match=message):
        parse_config(raw, Digest.of(raw))


def test_config_must_name_one_diff_id_per_layer() -> None:
    image = make_image([LAYER, LAYER], diff_ids=[LAYER.diff_id])
    manifest = parse_manifest(image.manifest, image.manifest_type)
    assert isinstance(manifest, ImageManifest)
    config = parse_config(image.config, manifest.config.digest)
    with pytest.raises(ManifestError, match="2 layers but its config names 1 diff_ids"):
        check_config_matches(manifest, config)


def test_config_must_be_the_manifests_own() -> None:
    manifest = parse_manifest(OCI_IMAGE.manifest, None)
    other = make_image([LAYER], env=["B=2"])
    assert isinstance(manifest, ImageManifest)
    config = parse_config(other.config, Digest.parse(other.config_digest))
    with pytest.raises(ManifestError, match="is not the manifest's config"):
        check_config_matches(manifest, config)


@pytest.mark.parametrize(
    ("media_type", "compression"),
    [
        ("application/vnd.oci.image.layer.v1.tar", Compression.NONE),
        ("application/vnd.oci.image.layer.v1.tar+gzip", Compression.GZIP),
        ("application/vnd.oci.image.layer.v1.tar+zstd", Compression.ZSTD),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", Compression.GZIP),
    ],
)
def test_layer_compression_follows_the_media_type(
    media_type: str, compression: Compression
) -> None:
    assert layer_compression(media_type) is compression


@pytest.mark.parametrize(
    ("media_type", "message"),
    [
        (DOCKER_FOREIGN_LAYER_GZIP, "foreign/non-distributable"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "non-distributable"),
        ("application/vnd.oci.image.layer.v1.tar+bzip2", "unsupported layer media type"),
    ],
)
def test_foreign_and_unknown_layers_are_refused(media_type: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        layer_compression(media_type)
