"""`ducc gc`: mark what published images reach, sweep the rest.

Roots are the recorded images (`.metadata/**/manifest.json`, with `config.json` naming
their chains), the public and per-platform links, and the named podman images. Flat trees,
chains and layers nothing reaches are removed through the publisher (`cvmfs_server ingest
--delete` in batches on CernVM-FS); podman entries without a name go too. A product made
within the grace period is kept: it may belong to a conversion still being published.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.digest import Digest, chain_ids
from ducc.errors import DuccError
from ducc.layout import CATALOG_MARKER, CHAINS, FLAT, LAYERS, METADATA, MULTIARCH, Layout
from ducc.metadata import CONFIG_FILE, LAYERS_FILE, MANIFEST_FILE, recorded_images
from ducc.podman import PodmanStore
from ducc.publish.base import Publisher

_log = log.get("gc")


@dataclass(slots=True)
class Reachable:
    flats: set[Path] = field(default_factory=set)
    chains: set[Path] = field(default_factory=set)
    layers: set[Path] = field(default_factory=set)

    def __contains__(self, path: Path) -> bool:
        return path in self.flats or path in self.chains or path in self.layers


@dataclass(slots=True)
class GcReport:
    removed: list[str] = field(default_factory=list)
    podman_images: list[str] = field(default_factory=list)
    young: list[str] = field(default_factory=list)  # unreachable, kept by the grace period
    reachable: int = 0
    dry_run: bool = False


def mark(layout: Layout) -> Reachable:
    reach = Reachable()
    for _, directory in recorded_images(layout.root, platforms=True):
        _mark_image(layout, directory, reach)
    for link in _links(layout.root):
        target = link.resolve()
        if target.parent.parent.parent == (layout.root / FLAT).resolve():
            reach.flats.add(layout.root / FLAT / target.parent.name / target.name)
    store = PodmanStore(layout.podman_store)
    if store.images_json.exists():  # an image's id is its config's hex, as is its flat tree's
        reach.flats |= {layout.flat_dir(Digest("sha256", i.id)) for i in store.images() if i.names}
    return reach


def _mark_image(layout: Layout, directory: Path, reach: Reachable) -> None:
    try:
        manifest = json.loads((directory / MANIFEST_FILE).read_bytes())
        reach.flats.add(layout.flat_dir(Digest.parse(manifest["config"]["digest"])))
        for layer in manifest.get("layers", []):
            reach.layers.add(layout.layer_dir(Digest.parse(layer["digest"])))
    except (OSError, ValueError, KeyError, TypeError, DuccError) as exc:
        _log.warning("gc_unreadable_record", path=str(directory), error=str(exc))
        return
    try:
        config = json.loads((directory / CONFIG_FILE).read_bytes())
        diff_ids = [Digest.parse(d) for d in config["rootfs"]["diff_ids"]]
    except (OSError, ValueError, KeyError, TypeError, DuccError):
        return  # recorded without its config (older runs): its chains are not protected
    reach.chains |= {layout.chain_dir(c) for c in chain_ids(diff_ids)}


def _links(root: Path) -> Iterator[Path]:
    """Public and per-platform symlinks (the repository's visible paths)."""
    tops = [p for p in root.iterdir() if not p.name.startswith(".") or p.name == MULTIARCH]
    for top in tops:
        if top.is_symlink():
            yield top
        elif top.is_dir() and top.name != "podmanStore":
            for dirpath, dirnames, filenames in os.walk(top):
                for name in dirnames + filenames:
                    if os.path.islink(os.path.join(dirpath, name)):
                        yield Path(dirpath, name)


def _products(root: Path, top: str) -> Iterator[Path]:
    base = root / top
    if not base.is_dir():
        return
    for shard in sorted(base.iterdir()):
        if shard.is_dir() and not shard.is_symlink() and len(shard.name) == 2:
            for product in sorted(shard.iterdir()):
                if product.is_dir() and not product.name.startswith("."):
                    yield product


def _made_at(product: Path, top: str) -> float:
    """When ducc completed the product: its completion mark's mtime (the tree's own times
    come from the image), else the directory's."""
    mark_file = product / (f"{METADATA}/{LAYERS_FILE}" if top == LAYERS else CATALOG_MARKER)
    for candidate in (mark_file, product):
        try:
            return candidate.lstat().st_mtime
        except OSError:
            continue
    return 0.0


def sweep_candidates(
    layout: Layout, reach: Reachable, grace: float, now: float
) -> tuple[list[Path], list[Path]]:
    """(unreachable products old enough to go, unreachable ones kept by the grace period)."""
    old: list[Path] = []
    young: list[Path] = []
    for top in (FLAT, CHAINS, LAYERS):
        for product in _products(layout.root, top):
            if product in reach:
                continue
            (young if now - _made_at(product, top) < grace else old).append(product)
    return old, young


def collect_garbage(
    publisher: Publisher, *, grace: float, dry_run: bool, wait: bool = True
) -> GcReport:
    layout = Layout(publisher.root)
    report = GcReport(dry_run=dry_run)
    with publisher.session(wait=wait):
        store = PodmanStore(layout.podman_store)
        nameless = (
            [i.id for i in store.images() if not i.names] if store.images_json.exists() else []
        )
        report.podman_images = nameless
        if nameless and not dry_run:
            with publisher.transaction():
                for image_id in nameless:
                    store.remove_image(image_id)
        reach = mark(layout)
        report.reachable = len(reach.flats) + len(reach.chains) + len(reach.layers)
        old, young = sweep_candidates(layout, reach, grace, time.time())
        report.removed = [layout.relative(p) for p in old]
        report.young = [layout.relative(p) for p in young]
        if old and not dry_run:
            publisher.delete(old)
    _log.info("gc_done", removed=len(report.removed), kept_young=len(report.young), dry_run=dry_run)
    return report
