"""`ducc gc`: mark what published images reach, sweep the rest, fail-safe.

Roots are the recorded images (`recorded.py` reads ducc's records and DUCC's), the public and
per-platform links, and the named podman images (and, for DUCC's older per-layer podman store,
the layers its entries point at). A record gc cannot read stops it before anything is removed:
it cannot tell what that image reaches. Flat trees, layers and the chains gc recognises as
ducc's (`chains.py`) that nothing reaches are removed through the publisher; chains it does
not recognise (DUCC's) stay unless asked. A product made within the grace period is kept: it
may belong to a conversion still being published.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.errors import UnreadableRecords
from ducc.oci.digest import Digest, chain_ids
from ducc.publish.base import CATALOG_MARKER, Publisher
from ducc.repository.chains import cvmfs_ducc_chain_ids, ducc_chains, read_layer_facts
from ducc.repository.layout import CHAINS, FLAT, LAYERS, METADATA, MULTIARCH, Layout
from ducc.repository.metadata import LAYERS_FILE, read_diff_id
from ducc.repository.podman import IMAGES, PodmanStore
from ducc.repository.recorded import Record, RecordForm, RecordScan, scan_records

_log = log.get("gc")


@dataclass(slots=True)
class Reachable:
    flats: set[Path] = field(default_factory=set)
    chains: set[Path] = field(default_factory=set)
    layers: set[Path] = field(default_factory=set)

    def __contains__(self, path: Path) -> bool:
        return path in self.flats or path in self.chains or path in self.layers


@dataclass(frozen=True, slots=True)
class GcOptions:
    grace: float  # seconds
    dry_run: bool = False
    remove_unknown_chains: bool = False  # DUCC's chains (and any gc does not recognise)
    only: frozenset[str] | None = None  # remove no more than these (repository-relative)
    wait: bool = True


@dataclass(slots=True)
class GcReport:
    removed: list[str] = field(default_factory=list)
    podman_images: list[str] = field(default_factory=list)
    young: list[str] = field(default_factory=list)  # unreachable, kept by the grace period
    unknown_chains: list[str] = field(default_factory=list)  # not ducc's: kept
    reachable: int = 0
    dry_run: bool = False


@dataclass(slots=True)
class Sweep:
    old: list[Path] = field(default_factory=list)
    young: list[Path] = field(default_factory=list)
    unknown: list[Path] = field(default_factory=list)


def read_records(layout: Layout) -> RecordScan:
    """Every record, or `UnreadableRecords` naming the ones that cannot be read."""
    scan = scan_records(layout.root)
    if scan.unreadable:
        for bad in scan.unreadable:
            _log.error("gc_unreadable_record", path=str(bad.directory), error=bad.reason)
        raise UnreadableRecords([bad.reason for bad in scan.unreadable])
    return scan


def mark(layout: Layout, scan: RecordScan) -> Reachable:
    reach = Reachable()
    for record in scan.records:
        _mark_record(layout, record, reach)
    for link in _links(layout.root):
        target = link.resolve()
        if target.parent.parent.parent == (layout.root / FLAT).resolve():
            reach.flats.add(layout.root / FLAT / target.parent.name / target.name)
    store = PodmanStore(layout.podman_store)
    if store.images_json.exists():  # an image's id is its config's hex, as is its flat tree's
        reach.flats |= {layout.flat_dir(Digest("sha256", i.id)) for i in store.images() if i.names}
        reach.layers |= _podman_layers(layout, store)
    return reach


def _mark_record(layout: Layout, record: Record, reach: Reachable) -> None:
    reach.flats.add(layout.flat_dir(record.config))
    reach.layers |= {layout.layer_dir(blob) for blob in record.layers}
    if record.form is RecordForm.CVMFS_DUCC:  # DUCC's chains of an image DUCC recorded
        reach.chains |= {layout.chain_dir(c) for c in cvmfs_ducc_chain_ids(record.layers)}
        return
    ids = record.diff_ids
    if ids is None:  # recorded without its config: the layers' metadata names the diff_ids
        found = [read_diff_id(layout, blob) for blob in record.layers]
        ids = tuple(d for d in found if d is not None)
        if len(ids) != len(record.layers):
            return
    reach.chains |= {layout.chain_dir(c) for c in chain_ids(list(ids))}


def _podman_layers(layout: Layout, store: PodmanStore) -> set[Path]:
    """Layers DUCC's older podman store points at (`overlay/<id>/diff -> .layers/.../layerfs`)."""
    top = layout.root / LAYERS
    return {target.parent for target in store.diff_targets() if target.parent.parent.parent == top}


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
    """When the product was completed: its completion mark's mtime (the tree's own times
    come from the image), else the directory's."""
    mark_file = product / (f"{METADATA}/{LAYERS_FILE}" if top == LAYERS else CATALOG_MARKER)
    for candidate in (mark_file, product):
        try:
            return candidate.lstat().st_mtime
        except OSError:
            continue
    return 0.0


def sweep_candidates(
    layout: Layout,
    reach: Reachable,
    options: GcOptions,
    now: float,
    ours: set[str],
) -> Sweep:
    """Unreachable products: old enough to go, kept by the grace period, or chains kept
    because they are not ducc's (`ours` holds the hex names of ducc's chains)."""
    sweep = Sweep()
    for top in (FLAT, CHAINS, LAYERS):
        for product in _products(layout.root, top):
            if product in reach:
                continue
            if top == CHAINS and product.name not in ours and not options.remove_unknown_chains:
                sweep.unknown.append(product)
            elif now - _made_at(product, top) < options.grace:
                sweep.young.append(product)
            elif options.only is None or layout.relative(product) in options.only:
                sweep.old.append(product)
    return sweep


def collect_garbage(publisher: Publisher, options: GcOptions) -> GcReport:
    layout = Layout(publisher.root)
    report = GcReport(dry_run=options.dry_run)
    with publisher.session(wait=options.wait):
        scan = read_records(layout)
        report.podman_images = _remove_nameless(publisher, layout, options)
        reach = mark(layout, scan)
        report.reachable = len(reach.flats) + len(reach.chains) + len(reach.layers)
        sweep = sweep_candidates(layout, reach, options, time.time(), _ducc_chains(layout, reach))
        report.removed = [layout.relative(p) for p in sweep.old]
        report.young = [layout.relative(p) for p in sweep.young]
        report.unknown_chains = [layout.relative(p) for p in sweep.unknown]
        if sweep.old and not options.dry_run:
            publisher.delete(sweep.old)
    _log.info(
        "gc_done",
        removed=len(report.removed),
        kept_young=len(report.young),
        kept_unknown_chains=len(report.unknown_chains),
        dry_run=options.dry_run,
    )
    return report


def _ducc_chains(layout: Layout, reach: Reachable) -> set[str]:
    """The chains ducc built, by name; every layer's metadata is read only when some chain is
    unreachable (its origin must be known before it may go)."""
    present = list(_products(layout.root, CHAINS))
    if all(chain in reach.chains for chain in present):
        return set()
    return ducc_chains([p.name for p in present], read_layer_facts(layout.root))


def _remove_nameless(publisher: Publisher, layout: Layout, options: GcOptions) -> list[str]:
    """Podman entries without a name (their images were unpublished); their ids."""
    store = PodmanStore(layout.podman_store)
    if not store.images_json.exists():
        return []
    nameless = [i.id for i in store.images() if not i.names]
    if options.only is not None:
        relative = layout.relative(store.root / IMAGES)
        nameless = [i for i in nameless if f"{relative}/{i}" in options.only]
    if nameless and not options.dry_run:
        with publisher.transaction():
            for image_id in nameless:
                store.remove_image(image_id)
    return nameless
