"""The layer caps a user sets reach every place a layer is applied, not only the stream."""

from __future__ import annotations

from pathlib import Path

import pytest

from ducc.errors import HostileLayer
from ducc.layers.limits import Limits
from ducc.oci.digest import Digest
from ducc.pipeline.blobcache import CachedLayer
from ducc.publish.directory import DirectoryPublisher
from tests.support.layer_tars import TAR_GZIP, f, gz, tar_bytes


def cached(tmp_path: Path, limits: Limits) -> CachedLayer:
    tar = tar_bytes([f(f"file{i}", b"x" * 1000) for i in range(20)])
    blob = gz(tar)
    path = tmp_path / "blob"
    path.write_bytes(blob)
    return CachedLayer("sha256:capped", path, TAR_GZIP, len(blob), Digest.of(tar), limits)


@pytest.mark.parametrize(
    ("limits", "says"),
    [
        (Limits(max_entries=5), "entry 'file5': more than 5 entries"),
        (Limits(max_bytes=8000), "entry 'file5': layer expands to more than 8000 bytes"),
    ],
)
def test_directory_ingest_applies_the_layers_limits(
    tmp_path: Path, limits: Limits, says: str
) -> None:
    publisher = DirectoryPublisher(tmp_path / "repo")
    layerfs = tmp_path / "repo/.layers/ca/capped/layerfs"
    with pytest.raises(HostileLayer, match=says):
        publisher.ingest_layer(layerfs, cached(tmp_path, limits))
    assert not layerfs.exists()


def test_directory_ingest_within_the_limits(tmp_path: Path) -> None:
    publisher = DirectoryPublisher(tmp_path / "repo")
    layerfs = tmp_path / "repo/layerfs"
    publisher.ingest_layer(layerfs, cached(tmp_path, Limits(max_entries=20)))
    assert (layerfs / "file19").read_bytes() == b"x" * 1000
