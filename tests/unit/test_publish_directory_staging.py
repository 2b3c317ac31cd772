"""The directory publisher removes staging trees a killed run left, at every session,
without holding the whole (ever growing) repository in memory to find them."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from ducc.publish.directory import STAGED, DirectoryPublisher
from ducc.repository.layout import CHAINS, FLAT, LAYERS


def product(root: Path, top: str, number: int) -> Path:
    hex_digest = f"{number:064x}"
    path = root / top / hex_digest[-2:] / hex_digest
    (path / "layerfs").mkdir(parents=True, exist_ok=True)
    return path


def test_stale_staging_is_removed_at_both_depths_and_products_are_kept(tmp_path: Path) -> None:
    layer, chain, flat = (product(tmp_path, top, 1) for top in (".layers", ".chains", ".flat"))
    stale = [
        layer.parent / f".{layer.name}.tmp-abc123",
        chain.parent / f".{chain.name}.tmp-x_9",
        flat.parent / f".{flat.name}.tmp-q",
        layer / ".layerfs.tmp-def456",
    ]
    for path in stale:
        (path / "inside").mkdir(parents=True)
    kept_link = layer.parent / ".link.tmp-zz"
    kept_link.symlink_to(flat)  # a symlink is never followed nor removed
    with DirectoryPublisher(tmp_path).session(wait=False):
        pass
    assert not any(path.exists() for path in stale)
    assert all((p / "layerfs").is_dir() for p in (layer, chain, flat))
    assert kept_link.is_symlink()
    assert (flat / "layerfs").is_dir()


def test_finding_stale_staging_does_not_grow_with_the_repository(tmp_path: Path) -> None:
    for number in range(1000):
        for top in (".layers", ".chains", ".flat"):
            product(tmp_path, top, number)
    publisher = DirectoryPublisher(tmp_path)
    tracemalloc.start()
    try:
        with publisher.session(wait=False):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # A path per product (3,000 directories, 2 levels) took ~2.3 MiB; one directory's names
    # at a time stays far below.
    assert peak < 512 * 1024


def test_the_trees_scanned_are_the_repository_layouts_product_trees() -> None:
    # The publisher sits below the repository model and names the trees itself.
    assert {top for top, _ in STAGED} == {LAYERS, CHAINS, FLAT}
