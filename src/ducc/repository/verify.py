"""`ducc verify`: check that a repository is consistent, without changing it.

Every recorded image (`.metadata/.../manifest.json`, in ducc's form or DUCC's, see
`recorded.py`) must have a public path that resolves to the complete flat tree of the
config its manifest names, a `config.json` of that digest (where one is recorded), and
complete layers whose metadata matches their digests and the config's diff_ids; chains must
be complete; podman entries must point at complete flat trees (or, in DUCC's older
per-layer store, at complete layers). `deep` also compares the products' content
(`deepcheck.py`). Problems make `ducc verify` exit 1; warnings (leftovers that no client
sees) do not.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ducc.errors import RecordUnreadable
from ducc.oci.digest import Digest, digest_problem
from ducc.publish.base import CATALOG_MARKER
from ducc.repository.deepcheck import DeepCheck, image_products
from ducc.repository.layout import CHAINS, FLAT, LAYERS, METADATA, MULTIARCH, Layout
from ducc.repository.metadata import CONFIG_FILE, INDEX_FILE, LAYERS_FILE, MANIFEST_FILE
from ducc.repository.podman import OVERLAY, PodmanStore, load_json_list
from ducc.repository.products import APPTAINER_MARK
from ducc.repository.recorded import Record, RecordForm, read_record, scan_records

STAGING_MARK = ".tmp-"


@dataclass(slots=True)
class VerifyReport:
    counts: dict[str, int] = field(default_factory=dict)  # images, layers, chains, flat trees
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(root: Path, *, deep: bool = False) -> VerifyReport:
    """Check the repository at `root` (the directory holding `.layers`, `.flat`, ...)."""
    report = VerifyReport()
    layout = Layout(root)
    scan = scan_records(root)
    report.problems += [f"{bad.name}: {bad.reason}" for bad in scan.unreadable]
    referenced: set[str] = set()
    for name, records in _images(scan.records).items():
        referenced |= _check_image(layout, name, records, report)
    _check_shards(root / LAYERS, report, "layer", _layer_ok, referenced)
    _check_shards(root / CHAINS, report, "chain", lambda p: (p / CATALOG_MARKER).is_file())
    _check_shards(root / FLAT, report, "flat tree", lambda p: (p / APPTAINER_MARK).is_dir())
    _check_podman(layout, report)
    if deep:
        check = DeepCheck()
        for record in scan.records:
            products = image_products(layout, record.directory)
            damages = check.image(products) if products is not None else []
            report.problems += [f"{record.name}: {damage}" for damage in damages]
    return report


def record_problems(layout: Layout, directory: Path) -> list[str]:
    """What is wrong with one record and what it names, without reading content: its
    config, its layers' completion and diff_ids, its public path."""
    name = os.path.relpath(directory, layout.root / METADATA)
    try:
        record = read_record(directory, name)
    except RecordUnreadable as exc:
        return [f"{name}: {exc}"]
    report = VerifyReport()
    _check_image(layout, name, [record], report)
    return report.problems


def _images(records: tuple[Record, ...]) -> dict[str, list[Record]]:
    """Records per image: its own record first, then its per-platform records (DUCC kept a
    tag naming a manifest list only there)."""
    images: dict[str, list[Record]] = {}
    for record in sorted(records, key=lambda r: (r.name, r.label is not None, r.label or "")):
        images.setdefault(record.name, []).append(record)
    return images


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _check_image(
    layout: Layout, name: str, records: list[Record], report: VerifyReport
) -> set[str]:
    """Check one recorded image; the layer directory names (hex) it references."""
    report.counts["image"] = report.counts.get("image", 0) + 1
    main = records[0]
    if main.form is RecordForm.DUCC and main.label is None:
        _check_index(name, main.directory, report)
    layers = set()
    for record in records:
        diff_ids = _check_config(name, record, report)
        for index, blob in enumerate(record.layers):
            if not _layer_ok(layout.layer_dir(blob)):
                report.problems.append(f"{name}: layer {blob} is missing or incomplete")
                continue
            layers.add(blob.hex)
            wanted = diff_ids[index] if diff_ids and index < len(diff_ids) else None
            recorded = _read_json(layout.layer_dir(blob) / METADATA / LAYERS_FILE)
            written = recorded[0].get("diff-digest")
            if wanted is not None and written is not None and written != wanted:
                report.problems.append(f"{name}: layer {blob}: layers.json names another diff_id")
    link = layout.root / name
    if not link.is_symlink():
        if any(layout.flat_dir(r.config).exists() for r in records):
            report.problems.append(f"{name}: public path is missing")
        return layers  # converted with --skip-flat
    target = _resolve_public(layout, name, link)
    if target is None or not (target / APPTAINER_MARK).is_dir():
        report.problems.append(f"{name}: public path does not resolve to a complete flat tree")
    elif "$(CVMFS_ARCH" not in os.readlink(link) and target != (
        layout.flat_dir(main.config).resolve()
    ):
        report.problems.append(
            f"{name}: public path leads to {target.name[:12]}, but manifest.json names "
            f"config {main.config}"
        )
    return layers


def _check_config(name: str, record: Record, report: VerifyReport) -> list[str] | None:
    """`config.json` must be the config the manifest names (older records, and DUCC's,
    have none); its diff_ids, if it is."""
    try:
        raw = (record.directory / CONFIG_FILE).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        report.problems.append(f"{name}: config.json is unreadable: {exc.strerror}")
        return None
    if Digest.of(raw, record.config.algorithm) != record.config:
        report.problems.append(
            f"{name}: config.json is not the config {record.config} of manifest.json"
        )
        return None
    try:
        diff_ids = json.loads(raw)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        return None
    return [str(d) for d in diff_ids] if isinstance(diff_ids, list) else None


def _check_index(name: str, directory: Path, report: VerifyReport) -> None:
    index = directory / INDEX_FILE
    if not index.exists():
        return
    doc = _read_json(index)
    if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
        report.problems.append(f"{name}: index.json is unreadable")
        return
    digest = str(Digest.of((directory / MANIFEST_FILE).read_bytes()))
    listed = {m.get("digest") for m in doc["manifests"] if isinstance(m, dict)}
    if digest not in listed:
        report.problems.append(f"{name}: manifest.json is not an entry of index.json")


def _resolve_public(layout: Layout, name: str, link: Path) -> Path | None:
    text = os.readlink(link)
    if "$(CVMFS_ARCH" in text:  # a variant symlink: check every platform's link instead
        platforms = sorted((layout.root / MULTIARCH).glob(f"*/{name}"))
        resolved = [p.resolve() for p in platforms if p.is_symlink()]
        return (
            resolved[0]
            if resolved and all((r / APPTAINER_MARK).is_dir() for r in resolved)
            else None
        )
    target = link.resolve()
    return target if target.is_dir() else None


def _layer_ok(path: Path) -> bool:
    if not (path / "layerfs").is_dir():
        return False
    info = _read_json(path / METADATA / LAYERS_FILE)
    try:
        return bool(info[0]["compressed-diff-digest"] == f"sha256:{path.name}")
    except (TypeError, KeyError, IndexError):
        return False


def _check_shards(
    top: Path,
    report: VerifyReport,
    what: str,
    complete: Callable[[Path], bool],
    referenced: set[str] | None = None,
) -> None:
    """Products must be named by their digest and complete. An incomplete product nothing
    references (a layer ingested by a run interrupted before its image was published) is
    only a warning: no client reaches it through a public path, and the next convert
    completes it or gc removes it."""
    if not top.is_dir():
        return
    for shard in sorted(p for p in top.iterdir() if p.is_dir()):
        for product in sorted(p for p in shard.iterdir() if p.is_dir() and not p.is_symlink()):
            if STAGING_MARK in product.name and product.name.startswith("."):
                report.warnings.append(f"leftover staging directory {product}")
                continue
            report.counts[what] = report.counts.get(what, 0) + 1
            if product.name[:2] != shard.name or digest_problem(f"sha256:{product.name}"):
                report.problems.append(f"{what} {product} is not named by a digest in its shard")
            elif not complete(product):
                if referenced is not None and product.name not in referenced:
                    report.warnings.append(f"unreferenced {what} {product} is incomplete")
                else:
                    report.problems.append(f"{what} {product} is incomplete")


def _check_podman(layout: Layout, report: VerifyReport) -> None:
    """Each named image's layer, and the layers below it (DUCC's older store has one per
    image layer, each `diff` pointing at `.layers/<xx>/<blob>/layerfs`), must lead to a
    complete flat tree or a complete layer."""
    store = PodmanStore(layout.podman_store)
    if not store.images_json.exists():
        return
    try:
        parents = {str(e["id"]): e.get("parent") for e in load_json_list(store.layers_json)}
        tops = [i.layer for i in store.images() if i.layer]
    except Exception as exc:
        report.problems.append(f"podman store: {exc}")
        return
    checked: set[str] = set()
    for top in tops:
        layer: str | None = top
        while layer and layer not in checked:
            checked.add(layer)
            problem = _podman_layer_problem(layout, store, layer)
            if problem:
                report.problems.append(f"podman store: layer {layer[:12]} {problem}")
            parent = parents.get(layer)
            layer = parent if isinstance(parent, str) else None


def _podman_layer_problem(layout: Layout, store: PodmanStore, layer: str) -> str | None:
    diff = store.root / OVERLAY / layer / "diff"
    if not diff.is_symlink():
        return "has no diff link" if not diff.is_dir() else None
    target = Path(os.path.normpath(diff.parent / os.readlink(diff)))
    if target.parent.parent.parent == layout.root / LAYERS and target.name == "layerfs":
        return None if _layer_ok(target.parent) else f"points at incomplete layer {target}"
    if not (target / APPTAINER_MARK).is_dir():
        return f"points at incomplete flat tree {target}"
    return None
