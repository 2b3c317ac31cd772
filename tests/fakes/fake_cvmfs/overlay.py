"""`cvmfs_server overlay`: layer directories merged into a flat tree, with OCI whiteouts.

Layers are applied bottom to top (image-spec layer.md): `.wh.<name>` hides `<name>` of the
layers below, `.wh..wh..opq` hides everything the layers below put in that directory; the
markers themselves are not copied. Real cvmfs merges catalogs; the fake copies files.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from .errors import USAGE, FakeError
from .extract import CATALOG, CATALOG_MODE
from .faults import injected
from .options import Spec, one_repository, parse
from .paths import clean, join, kind, split_repo
from .report import Report
from .session import Session, session
from .tree import Links, copy_node, empty_dir, is_root, remove, set_meta

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY = Spec(
    flags={"-S": "skip-singularity", "--skip-singularity": "skip-singularity"},
    valued={
        "-l": "layers",
        "--layers": "layers",
        "-d": "dest",
        "--dest": "dest",
        "-c": "config",
        "--config": "config",
    },
)


def overlay(report: Report, args: Sequence[str]) -> None:
    parsed = parse(OVERLAY, "overlay", args)
    name, _ = split_repo(one_repository("overlay", parsed))
    report.repo = name
    raw_layers, raw_dest = parsed.value("layers"), parsed.value("dest")
    if not raw_layers:
        raise FakeError("Please provide layer paths with -l (comma-separated, bottom-to-top order)")
    if raw_dest is None or not clean(raw_dest):
        raise FakeError("Please provide a destination path with -d", USAGE)
    layers = [clean(layer) for layer in raw_layers.split(",") if layer]
    dest = clean(raw_dest)
    with session(report.config, name) as current:
        _check(current, layers, dest)
        current.check_free(dest)
        current.check_lease_parent(dest if report.config.gateway else "")
        txn = current.open(dest if report.config.gateway else "", "overlay")
        try:
            if report.fires("FAKE_CVMFS_FAIL_OVERLAY"):
                raise injected("FAKE_CVMFS_FAIL_OVERLAY", "Overlay merge failed")
            staged = _flatten(current, layers)
        except BaseException:
            current.close(txn, discard=True)
            raise
        current.view.apply(staged, dest, (), meta=True)
        current.close(txn, discard=False)
        current.save(current.meta.published(current.scope(txn), "overlay"))
        print(f"Merged {len(layers)} layers into /{dest}, revision {current.meta.revision}")


def _check(current: Session, layers: list[str], dest: str) -> None:
    published = current.repo.rdonly
    for layer in layers:
        if kind(published, layer) != "dir":
            raise FakeError(f"layer /{layer} is not a directory in {current.repo.name}")
    if kind(published, dest) != "missing":
        raise FakeError(f"destination /{dest} already exists in {current.repo.name}")


def _flatten(current: Session, layers: list[str]) -> Path:
    tree = current.repo.staging / "tree"
    empty_dir(current.repo.staging)
    tree.mkdir()
    links: Links = {}
    for layer in layers:
        _apply_layer(join(current.repo.rdonly, layer), tree, links)
    marker = tree / CATALOG
    remove(marker)
    marker.touch()
    os.chmod(marker, CATALOG_MODE)
    if is_root():
        os.chown(marker, *current.meta.owner)
    return tree


def _apply_layer(layer: Path, target: Path, links: Links) -> None:
    """One directory of one layer onto the merged tree: whiteouts first, then the entries."""
    names = sorted(os.listdir(layer))
    if OPAQUE in names:
        for child in os.listdir(target):
            remove(target / child)
    for name in names:
        if name.startswith(WHITEOUT) and name != OPAQUE:
            hidden = name[len(WHITEOUT) :]
            if hidden and "/" not in hidden and hidden not in (".", ".."):
                remove(target / hidden)
    for name in names:
        if name.startswith(WHITEOUT):
            continue
        source, destination = layer / name, target / name
        st = os.lstat(source)
        if stat.S_ISDIR(st.st_mode):
            if not (destination.is_dir() and not destination.is_symlink()):
                remove(destination)
                destination.mkdir()
            _apply_layer(source, destination, links)
            set_meta(destination, st)
        else:
            remove(destination)
            copy_node(source, destination, st, links)
