"""An image's products: sha256 names only; a blob listed twice, or shared by platforms, is
ingested once."""

from __future__ import annotations

from pathlib import Path

import pytest

from ducc.errors import ManifestError
from ducc.oci.digest import Digest
from ducc.oci.model import ImageManifest, parse_config, parse_manifest
from ducc.oci.reference import parse_reference
from ducc.pipeline.blobcache import BlobCache
from ducc.pipeline.builder import BuildOptions, BuildStats, ImageBuilder
from ducc.publish.base import Ingested
from ducc.publish.directory import DirectoryPublisher
from ducc.registry.client import Registries
from ducc.registry.manifests import ResolvedImage
from ducc.repository.products import plan_layers
from tests.support.images import directory, file, make_image, make_layer

REF = parse_reference("registry.test/team/app:v1")
BASE = make_layer([directory("etc"), file("etc/base", "base")])
TOP = make_layer([directory("etc"), file("etc/top", "top")])


def resolved(layers: list[int]) -> ResolvedImage:
    """An image whose manifest lists BASE and TOP in the order of `layers` (0 BASE, 1 TOP)."""
    image = make_image([(BASE, TOP)[i] for i in layers])
    manifest = parse_manifest(image.manifest, image.manifest_type)
    assert isinstance(manifest, ImageManifest)
    config = parse_config(image.config, Digest.parse(image.config_digest))
    return ResolvedImage(REF, config.platform, manifest, config)


def test_a_blob_listed_twice_is_ingested_once(tmp_path: Path) -> None:
    publisher = DirectoryPublisher(tmp_path / "repo")
    cache = BlobCache(tmp_path / "cache")
    for layer in (BASE, TOP):
        path = cache.path(Digest.parse(layer.digest))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(layer.blob)
    with Registries() as registries:
        builder = ImageBuilder(publisher, registries.client(REF), cache, BuildOptions())
        stats = BuildStats()
        ingested: dict[Digest, Ingested] = {}
        with publisher.session(wait=False):
            for layers in ([0, 1, 0], [1, 0]):
                plans = plan_layers(resolved(layers))
                for plan in plans:
                    builder.ingest_layer(plans, plan, stats, ingested)
    assert publisher.ingests == 2
    assert stats.layers_ingested == 2
    assert stats.layers_reused == 3
    assert set(ingested) == {Digest.parse(BASE.digest), Digest.parse(TOP.digest)}


def test_digests_other_than_sha256_are_refused_before_any_work() -> None:
    """`.flat/<xx>/<hex>` and `.layers/<xx>/<hex>` are sha256 names (verify, gc, podman IDs)."""
    image = make_image([BASE])
    manifest = parse_manifest(image.manifest, image.manifest_type)
    assert isinstance(manifest, ImageManifest)
    config = parse_config(image.config, Digest.of(image.config, "sha512"))
    sha512 = ResolvedImage(REF, config.platform, manifest, config)
    with pytest.raises(ManifestError, match="sha512 digests are not supported"):
        plan_layers(sha512)
