"""Adoption: an image DUCC (`cvmfs_ducc`) recorded is taken over without converting it again.

When the config digest DUCC recorded equals the one the registry's manifest names now, and
the layers and the flat tree DUCC made are complete, ducc rewrites the record in its own form
(the registry's manifest bytes, the index, and the config where the podman store holds a
verified copy) in one publish: no blob is downloaded, no layer ingested, clients see no
change. Otherwise the image is converted as usual (a changed image needs new products anyway).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ducc import log
from ducc.errors import ManifestError, RecordUnreadable, SizeMismatch
from ducc.oci.digest import Digest
from ducc.oci.model import ImageIndex, ImageManifest
from ducc.oci.platform import DEFAULT_PLATFORM, Platform
from ducc.oci.reference import Reference
from ducc.publish.base import Publisher
from ducc.registry.client import RegistryClient
from ducc.registry.manifests import get_manifest, select_manifests
from ducc.repository.layout import METADATA, MULTIARCH, Layout
from ducc.repository.links import (
    link_arch_aliases,
    link_platform,
    link_public,
    link_variant,
    platform_label,
)
from ducc.repository.metadata import layer_complete, write_image_metadata
from ducc.repository.podman import IMAGES, PodmanStore, big_data_file_name
from ducc.repository.pointers import DEFAULT_ARCH, drop_superseded_records
from ducc.repository.products import flat_complete
from ducc.repository.recorded import Record, RecordForm, platform_records, record_for

_log = log.get("adopt")


@dataclass(frozen=True, slots=True)
class AdoptedPlatform:
    platform: Platform | None  # None: a single manifest (its platform is in the config)
    manifest: ImageManifest


@dataclass(frozen=True, slots=True)
class Adoption:
    """What adopting `ref` writes: the registry's manifests for the platforms DUCC recorded."""

    ref: Reference
    platforms: tuple[AdoptedPlatform, ...]
    index: ImageIndex | None
    skip_flat: bool
    variant: bool  # per-platform links and the CVMFS_ARCH variant link (--multi-arch)

    @property
    def main(self) -> AdoptedPlatform:
        """The platform the public path means: amd64 when present, else the first."""
        return next(
            (p for p in self.platforms if p.platform and p.platform.architecture == DEFAULT_ARCH),
            self.platforms[0],
        )


def plan_adoption(
    layout: Layout,
    client: RegistryClient,
    ref: Reference,
    polled: Digest | None,
    *,
    platform: Platform | None = None,
    multi_arch: bool = False,
    skip_flat: bool = False,
) -> Adoption | None:
    """The adoption of `ref`, or None when its record is not DUCC's or its config or products
    changed (it is converted then). Fetches manifests only, never a blob."""
    try:
        record = record_for(layout, ref, platform)
    except RecordUnreadable:
        return None
    if record is None or record.form is not RecordForm.CVMFS_DUCC:
        return None
    top = get_manifest(client, ref.repository, polled or ref.pull_reference, expected=polled)
    recorded: dict[Platform | None, Record]
    index = top if isinstance(top, ImageIndex) else None
    if isinstance(top, ImageManifest):
        chosen = [AdoptedPlatform(None, top)]
        recorded = {None: record}
    elif not multi_arch:  # one platform: the record the poller compared
        chosen = _index_entries(client, ref, top, platform, multi_arch)
        recorded = {chosen[0].platform: record}
    else:  # DUCC's --multi-arch recorded each platform under its own label
        chosen = _index_entries(client, ref, top, platform, multi_arch)
        recorded = {r.platform: r for r in reversed(platform_records(layout, ref))}
    for item in chosen:
        known = recorded.get(item.platform)
        if known is None or not _unchanged(layout, known, item.manifest, skip_flat):
            return None
    return Adoption(ref, tuple(chosen), index, skip_flat, multi_arch and index is not None)


def _index_entries(
    client: RegistryClient,
    ref: Reference,
    index: ImageIndex,
    platform: Platform | None,
    multi_arch: bool,
) -> list[AdoptedPlatform]:
    wanted = platform or DEFAULT_PLATFORM
    chosen = []
    for descriptor in select_manifests(index, wanted, multi_arch=multi_arch, name=str(ref)):
        child = get_manifest(client, ref.repository, descriptor.digest)
        if not isinstance(child, ImageManifest):
            raise ManifestError(f"{ref}: index entry {descriptor.digest} is itself an index")
        if len(child.raw) != descriptor.size:
            raise SizeMismatch(f"manifest {descriptor.digest}", descriptor.size, len(child.raw))
        chosen.append(AdoptedPlatform(descriptor.platform, child))
    return chosen


def _unchanged(layout: Layout, record: Record, manifest: ImageManifest, skip_flat: bool) -> bool:
    """The registry names the config DUCC recorded, and DUCC's products are complete."""
    if record.form is not RecordForm.CVMFS_DUCC or record.config != manifest.config.digest:
        return False
    if not all(layer_complete(layout, blob) for blob in record.layers):
        return False
    return skip_flat or flat_complete(layout, record.config)


def adopt(publisher: Publisher, adoption: Adoption) -> None:
    """Rewrite the records in ducc's form (and add a missing link) in one transaction."""
    layout = Layout(publisher.root)
    ref = adoption.ref
    with publisher.transaction():
        if not adoption.skip_flat:
            _link(layout, adoption)
        if adoption.variant:
            for item in adoption.platforms:
                label = platform_label(layout, item.platform or DEFAULT_PLATFORM)
                directory = layout.root / METADATA / MULTIARCH / label / ref.simple_name
                _record(layout, directory, item.manifest, None)
        index = adoption.index.raw if adoption.index is not None else None
        _record(layout, layout.metadata_dir(ref), adoption.main.manifest, index)
        platforms = [p.platform or DEFAULT_PLATFORM for p in adoption.platforms]
        drop_superseded_records(layout, ref, platforms)
    _log.info("image_adopted", image=str(ref), platforms=len(adoption.platforms))


def _record(layout: Layout, directory: Path, manifest: ImageManifest, index: bytes | None) -> None:
    config = local_config(layout, manifest.config.digest)
    write_image_metadata(directory, manifest.raw, index, config)


def local_config(layout: Layout, digest: Digest) -> bytes | None:
    """The image config as the podman store keeps it (DUCC's too), if it matches `digest`."""
    path = PodmanStore(layout.podman_store).root / IMAGES / digest.hex
    try:
        data = (path / big_data_file_name(str(digest))).read_bytes()
    except OSError:
        return None
    return data if Digest.of(data, digest.algorithm) == digest else None


def _link(layout: Layout, adoption: Adoption) -> None:
    """The links clients use, where DUCC's do not already lead to the flat trees."""
    ref = adoption.ref
    if not adoption.variant:
        flat = layout.flat_dir(adoption.main.manifest.config.digest)
        if not _leads_to(layout.public_path(ref), flat):
            link_public(layout, ref, flat)
        return
    for item in adoption.platforms:
        label = platform_label(layout, item.platform or DEFAULT_PLATFORM)
        flat = layout.flat_dir(item.manifest.config.digest)
        if not _leads_to(layout.multiarch_path(label, ref), flat):
            link_platform(layout, label, ref, flat)
    public = layout.public_path(ref)
    if not (public.is_symlink() and "$(CVMFS_ARCH" in os.readlink(public)):
        link_variant(
            layout, ref, platform_label(layout, adoption.main.platform or DEFAULT_PLATFORM)
        )
    link_arch_aliases(layout)


def _leads_to(link: Path, flat: Path) -> bool:
    return link.is_symlink() and link.resolve() == flat.resolve()
