"""Repository metadata is the truth about what is published."""

from __future__ import annotations

import json
from pathlib import Path

from ducc.oci.digest import Digest
from ducc.oci.reference import parse_reference
from ducc.repository.layout import Layout
from ducc.repository.metadata import (
    add_layer_origin,
    layer_complete,
    read_origins,
    write_image_metadata,
    write_layer_info,
)
from ducc.repository.recorded import record_for, recorded_digest

REF = parse_reference("http://127.0.0.1:5000/a/b:1")


def test_recorded_digest_is_the_digest_of_the_stored_bytes(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert recorded_digest(layout, REF) is None
    manifest = json.dumps({"config": {"digest": "sha256:" + "1" * 64}}).encode()
    write_image_metadata(layout.metadata_dir(REF), manifest, None)
    assert recorded_digest(layout, REF) == Digest.of(manifest)
    record = record_for(layout, REF)
    assert record is not None
    assert str(record.config) == "sha256:" + "1" * 64
    index = b'{"manifests": []}'
    write_image_metadata(layout.metadata_dir(REF), manifest, index)
    assert recorded_digest(layout, REF) == Digest.of(index)
    write_image_metadata(layout.metadata_dir(REF), manifest, None)
    assert recorded_digest(layout, REF) == Digest.of(manifest)
    assert sorted(p.name for p in layout.metadata_dir(REF).iterdir()) == ["manifest.json"]


def test_layer_metadata_and_origins_accumulate_once(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    blob, diff = Digest.of(b"blob"), Digest.of(b"tar")
    layout.layerfs(blob).mkdir(parents=True)
    assert not layer_complete(layout, blob)
    c1, c2 = Digest.of(b"c1"), Digest.of(b"c2")
    assert add_layer_origin(layout, blob, c1)
    assert add_layer_origin(layout, blob, c2)
    assert not add_layer_origin(layout, blob, c1)
    assert not layer_complete(layout, blob)
    write_layer_info(layout, blob, diff, 123)
    assert layer_complete(layout, blob)
    assert read_origins(layout, blob) == [str(c1), str(c2)]
    (info,) = json.loads((layout.layer_metadata(blob) / "layers.json").read_text())
    assert info["id"] == diff.hex
    assert info["compressed-diff-digest"] == str(blob)
    assert info["diff-digest"] == str(diff)
    assert info["diff-size"] == 123
