"""Unpublishing images: `ducc prune` (a plan's images, see `ducc.pipeline.prune`) and
`ducc delete-image`.

An image is unpublished by removing its public path, per-platform links, metadata and
podman names in one transaction; its flat tree, chains and layers are left to `ducc gc`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.publish.base import Publisher
from ducc.repository.layout import METADATA, MULTIARCH, Layout
from ducc.repository.podman import PodmanStore

_log = log.get("unpublish")


@dataclass(slots=True)
class PrunePlan:
    remove: list[str] = field(default_factory=list)  # `registry/repository:tag`
    kept_unsure: list[str] = field(default_factory=list)  # the registry could not say
    kept_refused: list[str] = field(default_factory=list)  # a recipe entry could not be read


def unpublish(layout: Layout, names: Sequence[str]) -> None:
    """Remove every trace of the images `names` except their data (call in a transaction)."""
    root = layout.root
    for name in names:
        _remove_link(root, root / name)
        _remove_dir(root, root / METADATA / name)
        for platform in _subdirs(root / MULTIARCH):
            _remove_link(root, platform / name)
        for platform in _subdirs(root / METADATA / MULTIARCH):
            _remove_dir(root, platform / name)
    store = PodmanStore(layout.podman_store)
    if store.images_json.exists():
        store.remove_names(names)
    _log.info("images_unpublished", count=len(names))


def _subdirs(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()] if path.is_dir() else []


def _remove_link(root: Path, link: Path) -> None:
    if link.is_symlink():
        link.unlink()
        _prune_empty_parents(root, link.parent)


def _remove_dir(root: Path, directory: Path) -> None:
    if directory.is_dir() and not directory.is_symlink():
        for child in directory.iterdir():
            child.unlink()
        directory.rmdir()
        _prune_empty_parents(root, directory.parent)


def _prune_empty_parents(root: Path, directory: Path) -> None:
    """Remove the now empty `registry/repository` directories, never `root` or a top dir."""
    while root not in (directory, directory.parent) and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def prune(publisher: Publisher, plan: PrunePlan, *, dry_run: bool) -> None:
    if not plan.remove or dry_run:
        return
    with publisher.transaction():
        unpublish(Layout(publisher.root), plan.remove)


def delete_image(publisher: Publisher, name: str, *, dry_run: bool) -> bool:
    """Unpublish one image (`registry/repository:tag`); False if it is not published."""
    layout = Layout(publisher.root)
    exists = os.path.lexists(layout.root / name) or (layout.root / METADATA / name).is_dir()
    if exists and not dry_run:
        with publisher.transaction():
            unpublish(layout, [name])
    return exists
