"""gc on repositories DUCC filled: records in both forms, DUCC's chains and podman stores.

It stops before removing anything when a record cannot be read, keeps chains it did not
build unless told, and removes what nothing reaches once the grace period is over."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ducc.errors import UnreadableRecords
from ducc.oci.digest import Digest, chain_ids
from ducc.publish.directory import DirectoryPublisher
from ducc.repository.gc import GcOptions, collect_garbage
from ducc.repository.layout import Layout
from ducc.repository.metadata import add_layer_origin, write_image_metadata, write_layer_info
from tests.support.ducc_layout import DuccRepository, hexof
from tests.support.ducc_layout import chain_ids as ducc_chain_ids
from tests.support.images import Image, file, make_image, make_layer

HOST = "registry.test"
KEPT = make_image([make_layer([file("base", "1")]), make_layer([file("app", "kept")])])
GONE = make_image([make_layer([file("gone", "1")])])


def _repo(tmp_path: Path) -> DuccRepository:
    repo = DuccRepository(tmp_path / "repo", HOST)
    name = repo.publish("team/app", "1", KEPT)
    repo.podman_per_layer(name, KEPT)
    repo.layer(GONE.layers[0], GONE.config_digest)  # an image DUCC unpublished
    repo.chains(GONE)
    return repo


def _gc(repo: DuccRepository, **options: object) -> tuple[list[str], list[str]]:
    settings = GcOptions(**{"grace": 0.0, **options})  # type: ignore[arg-type]
    report = collect_garbage(DirectoryPublisher(repo.root), settings)
    return report.removed, report.unknown_chains


def _layer(image: Image, index: int = 0) -> str:
    blob = hexof(image.layers[index].digest)
    return f".layers/{blob[:2]}/{blob}"


def _ducc_chain(image: Image, index: int = 0) -> str:
    chain = ducc_chain_ids(image)[index]
    return f".chains/{chain[:2]}/{chain}"


def test_a_ducc_recorded_image_keeps_everything_and_ducc_s_chains_stay(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    removed, unknown = _gc(repo)
    assert removed == [_layer(GONE)]
    assert unknown == [_ducc_chain(GONE)]  # not ducc's: left alone
    for path in (_layer(KEPT, 0), _layer(KEPT, 1), _ducc_chain(KEPT, 1), _ducc_chain(GONE)):
        assert (repo.root / path).is_dir(), path


def test_remove_unknown_chains_takes_the_chains_nothing_reaches(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    removed, unknown = _gc(repo, remove_unknown_chains=True)
    assert sorted(removed) == sorted([_layer(GONE), _ducc_chain(GONE)])
    assert unknown == []
    assert (repo.root / _ducc_chain(KEPT, 1)).is_dir()  # its image's record reaches it


def test_a_bare_grace_period_keeps_young_products(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    removed, _ = _gc(repo, grace=3600.0)
    assert removed == []
    two_days_ago = time.time() - 2 * 86400
    info = repo.root / _layer(GONE) / ".metadata" / "layers.json"
    os.utime(info, (two_days_ago, two_days_ago))
    assert _gc(repo, grace=86400.0)[0] == [_layer(GONE)]


@pytest.mark.parametrize(
    "content", [b"{garbage", b'{"schemaVersion": 2}', b'{"Config": {"Digest": "sha256:x"}}']
)
def test_a_record_gc_cannot_read_stops_it_before_anything_goes(
    tmp_path: Path, content: bytes
) -> None:
    repo = _repo(tmp_path)
    record = repo.root / ".metadata" / f"{HOST}/team/app:1" / "manifest.json"
    record.write_bytes(content)
    with pytest.raises(UnreadableRecords) as info:
        _gc(repo)
    (listed,) = info.value.records
    assert listed.startswith(f"{record.parent}: manifest.json")
    assert (repo.root / _layer(GONE)).is_dir()  # the orphan is kept too: nothing goes


def test_chains_ducc_built_for_an_image_no_longer_recorded_are_removed(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    layout = Layout(repo.root)
    old = make_image([make_layer([file("base", "1")]), make_layer([file("app", "old")])])
    config = Digest.parse(old.config_digest)
    diff_ids = [Digest.parse(x.diff_id) for x in old.layers]
    for layer in old.layers:  # what ducc's conversion of `old` left behind
        blob = Digest.parse(layer.digest)
        (layout.layerfs(blob)).mkdir(parents=True, exist_ok=True)
        write_layer_info(layout, blob, Digest.parse(layer.diff_id), len(layer.tar))
        add_layer_origin(layout, blob, config)
    chains = [layout.chain_dir(c) for c in chain_ids(diff_ids)]
    for chain in chains:
        chain.mkdir(parents=True)
        (chain / ".cvmfscatalog").touch()
    removed, unknown = _gc(repo)
    assert {layout.relative(c) for c in chains} <= set(removed)
    assert unknown == [_ducc_chain(GONE)]


def test_a_ducc_record_without_config_still_protects_its_chains(tmp_path: Path) -> None:
    """An adopted image is recorded without config.json: layers.json names the diff_ids."""
    repo = DuccRepository(tmp_path / "repo", HOST)
    layout = Layout(repo.root)
    repo.products(KEPT)
    write_image_metadata(layout.root / ".metadata" / f"{HOST}/team/app:1", KEPT.manifest, None)
    chains = [
        layout.chain_dir(c) for c in chain_ids([Digest.parse(x.diff_id) for x in KEPT.layers])
    ]
    for chain in chains:
        chain.mkdir(parents=True)
        (chain / ".cvmfscatalog").touch()
    removed, _ = _gc(repo)
    assert removed == []


def test_layers_ducc_s_older_podman_store_points_at_are_kept(tmp_path: Path) -> None:
    repo = DuccRepository(tmp_path / "repo", HOST)
    repo.products(KEPT)
    repo.podman_per_layer(f"{HOST}/team/app:1", KEPT)  # named in podman, no record any more
    removed, _ = _gc(repo)
    assert not [p for p in removed if p.startswith(".layers")]


def test_a_delete_only_list_limits_what_goes(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    other = make_image([make_layer([file("other", "2")])])
    repo.layer(other.layers[0], other.config_digest)
    removed, _ = _gc(repo, only=frozenset({_layer(other)}))
    assert removed == [_layer(other)]
    assert (repo.root / _layer(GONE)).is_dir()
