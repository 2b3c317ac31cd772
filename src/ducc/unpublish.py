"""Unpublishing images: `ducc prune` (images no longer wished for) and `ducc delete-image`.

An image is unpublished by removing its public path, per-platform links, metadata and
podman names in one transaction; its flat tree, chains and layers are left to `ducc gc`.
Prune is conservative: an image is removed only when the recipe no longer names it or the
registry said definitely (404) that its tag is gone; a registry it cannot reach prunes
nothing under that wish.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.expansion import expand_all
from ducc.layout import METADATA, MULTIARCH, Layout
from ducc.oci.reference import Reference
from ducc.podman import PodmanStore
from ducc.poller import PollStatus, poll
from ducc.publish.base import Publisher
from ducc.recipe.model import RefusedWish, Wish
from ducc.recorded import recorded_digest, scan_records
from ducc.registry.client import Registries

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


def plan_prune(
    layout: Layout,
    wishes: Sequence[Wish],
    registries: Registries,
    refused: Sequence[RefusedWish] = (),
) -> PrunePlan:
    """Which recorded images no wish names any more, or whose tag the registry dropped. An
    image a refused recipe entry may name is kept: what that entry means is not known."""
    recorded = scan_records(layout.root).names  # DUCC's records of manifest lists too
    plan = PrunePlan()
    pairs = [(w.reference, w.ignore_errors) for w in wishes]
    wanted: dict[str, Reference] = {}
    unsure: list[Reference] = []
    for wish, expansion in zip(wishes, expand_all(registries, pairs, check=False), strict=True):
        if expansion.error is not None:
            unsure.append(wish.reference)
        wanted |= {ref.simple_name: ref for ref in expansion.images}
    gone = _vanished(layout, registries, [wanted[n] for n in recorded if n in wanted])
    for name in recorded:
        if any(_covers(ref, name) for ref in unsure):
            plan.kept_unsure.append(name)
        elif any(_may_name(r.input, name) for r in refused):
            plan.kept_refused.append(name)
        elif name not in wanted or name in gone:
            plan.remove.append(name)
    return plan


def _vanished(layout: Layout, registries: Registries, refs: list[Reference]) -> set[str]:
    """Wanted images whose tag the registry says (404) no longer exists."""
    results = poll(registries, refs, lambda ref: recorded_digest(layout, ref))
    return {r.reference.simple_name for r in results if r.status == PollStatus.VANISHED}


def _covers(ref: Reference, name: str) -> bool:
    """Whether the (possibly wildcard) wish `ref` could name the recorded image `name`."""
    repository, _, tag = name.rpartition(":")
    if repository != f"{ref.registry}/{ref.repository}":
        return False
    if ref.is_wildcard:
        return ref.tag_glob().matches(tag)
    return ref.simple_name == name


def _may_name(text: str, name: str) -> bool:
    """Whether an entry that could not be parsed may stand for the recorded image `name`:
    same `registry/repository`, ignoring case and Docker Hub's `library/`."""
    rest = text.split("://", 1)[-1].split("@", 1)[0]
    host, _, path = rest.partition("/")
    head, slash, last = path.rpartition("/")
    repository = head + slash + last.split(":", 1)[0]
    spellings = {f"{host}/{repository}".lower(), f"{host}/library/{repository}".lower()}
    return name.rpartition(":")[0].lower() in spellings


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
