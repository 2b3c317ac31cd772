"""The one reader of records: ducc's (registry bytes) and DUCC's (Go's re-serialised struct,
manifest lists under `.metadata/.multiarch/<label>/`), and why a record cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ducc.errors import RecordUnreadable
from ducc.oci.digest import Digest
from ducc.oci.platform import Platform
from ducc.oci.reference import parse_reference
from ducc.repository.layout import Layout
from ducc.repository.metadata import write_image_metadata
from ducc.repository.recorded import (
    RecordForm,
    read_record,
    record_for,
    recorded_digest,
    scan_records,
)
from tests.support.ducc_layout import go_manifest
from tests.support.images import Image, file, make_image, make_layer

IMAGE = make_image([make_layer([file("a", "1")]), make_layer([file("b", "2")])])
REF = parse_reference("http://127.0.0.1:5000/team/app:1")
NAME = REF.simple_name


def _digests(image: Image) -> tuple[Digest, ...]:
    return tuple(Digest.parse(x.digest) for x in image.layers)


def test_ducc_s_go_record_is_read_with_its_config_and_layers(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_bytes(go_manifest(IMAGE))
    record = read_record(tmp_path, NAME)
    assert record.form is RecordForm.CVMFS_DUCC
    assert record.config == Digest.parse(IMAGE.config_digest)
    assert record.layers == _digests(IMAGE)
    assert record.diff_ids is None


def test_ducc_s_own_record_carries_the_diff_ids_of_its_config(tmp_path: Path) -> None:
    write_image_metadata(tmp_path, IMAGE.manifest, None, IMAGE.config)
    record = read_record(tmp_path, NAME)
    assert record.form is RecordForm.DUCC
    assert record.digest == Digest.parse(IMAGE.digest)
    assert record.diff_ids == tuple(Digest.parse(x.diff_id) for x in IMAGE.layers)


def test_go_keys_are_matched_without_case_and_a_nil_layer_list_is_empty(tmp_path: Path) -> None:
    doc = {"schemaversion": 2, "CONFIG": {"digest": IMAGE.config_digest}, "Layers": None}
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    record = read_record(tmp_path, NAME)
    assert (record.form, record.layers) == (RecordForm.CVMFS_DUCC, ())


def test_foreign_layers_ducc_skipped_are_not_expected_in_layers(tmp_path: Path) -> None:
    doc = json.loads(go_manifest(IMAGE))
    doc["Layers"][0]["MediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    assert read_record(tmp_path, NAME).layers == _digests(IMAGE)[1:]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{garbage", "manifest.json is not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"SchemaVersion": 2, "Config": {"Digest": ""}}', "names no config digest"),
        (b'{"schemaVersion": 2}', "no 'config'"),
        (b'{"config": {"digest": "sha256:abc"}}', "needs 64 hex characters"),
        (b'{"Config": {"Digest": "sha256:' + b"a" * 64 + b'"}, "Layers": {}}', "not a list"),
    ],
)
def test_an_unreadable_record_says_why(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(RecordUnreadable) as info:
        read_record(tmp_path, NAME)
    assert reason in info.value.message
    assert str(tmp_path) in info.value.message


def test_scan_finds_images_platform_records_and_unreadable_ones(tmp_path: Path) -> None:
    metadata = tmp_path / ".metadata"
    write_image_metadata(metadata / NAME, IMAGE.manifest, None, IMAGE.config)
    (metadata / ".multiarch" / "arm64:v8" / "h/listed:1").mkdir(parents=True)
    (metadata / ".multiarch" / "arm64:v8" / "h/listed:1" / "manifest.json").write_bytes(
        go_manifest(IMAGE)
    )
    (metadata / "h/broken:1").mkdir(parents=True)
    (metadata / "h/broken:1" / "manifest.json").write_text("nope")
    (metadata / "remove-schedule.json").write_text("[]")  # DUCC's file: no record
    scan = scan_records(tmp_path)
    assert [(r.name, r.label) for r in scan.records] == [
        (NAME, None),
        ("h/listed:1", "arm64:v8"),
    ]
    assert scan.records[1].platform == Platform("linux", "arm64")
    assert [u.name for u in scan.unreadable] == ["h/broken:1"]
    assert scan.names == sorted([NAME, "h/broken:1", "h/listed:1"])


def test_record_for_a_manifest_list_ducc_recorded_only_per_platform(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert record_for(layout, REF) is None
    assert recorded_digest(layout, REF) is None
    for label in ("arm", "amd64"):
        where = tmp_path / ".metadata/.multiarch" / label / NAME
        where.mkdir(parents=True)
        (where / "manifest.json").write_bytes(go_manifest(IMAGE))
    found = record_for(layout, REF)
    assert found is not None
    assert found.label == "amd64"  # the default platform, linux/amd64
    arm = record_for(layout, REF, Platform("linux", "arm", "v7"))
    assert arm is not None
    assert arm.label == "arm"
    # The digest of DUCC's own bytes: never the registry's, so the image is looked at.
    assert recorded_digest(layout, REF) == Digest.of(go_manifest(IMAGE))
    assert recorded_digest(layout, REF) != Digest.parse(IMAGE.digest)
