"""What makes a converted image visible: public links, the podman store entry and, last,
the image metadata the poller reads as the truth (so a run killed before it simply
converts again, and a recorded image is always complete).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ducc.errors import RecordUnreadable
from ducc.oci.digest import Digest
from ducc.oci.platform import Platform
from ducc.oci.reference import Reference
from ducc.registry.manifests import ResolvedImage
from ducc.repository.layout import METADATA, MULTIARCH, Layout
from ducc.repository.links import (
    ARCH_ALIASES,
    link_arch_aliases,
    link_platform,
    link_public,
    link_variant,
    platform_label,
)
from ducc.repository.metadata import (
    CONFIG_FILE,
    INDEX_FILE,
    MANIFEST_FILE,
    layer_complete,
    read_diff_size,
    write_image_metadata,
)
from ducc.repository.podman import PodmanStore
from ducc.repository.products import flat_complete
from ducc.repository.recorded import RecordForm, platform_records, record_for
from ducc.repository.rollback import Rollback, undone_on_failure

DEFAULT_ARCH = "amd64"


@dataclass(frozen=True, slots=True)
class Converted:
    image: ResolvedImage
    flat: Path | None  # None with --skip-flat


def default_of(converted: list[Converted]) -> Converted:
    """The platform the public path means: amd64 when present, else the first."""
    return next(
        (c for c in converted if c.image.platform.architecture == DEFAULT_ARCH), converted[0]
    )


def write_pointers(
    layout: Layout, ref: Reference, converted: list[Converted], *, variant: bool, podman: bool
) -> None:
    """Podman entry, links, then metadata; `variant` publishes per-platform trees.

    The public links come after everything that can fail for reasons of the image (the
    podman entry) and before the metadata that records the image as published, and every
    file, link and directory is noted first: where no transaction can roll back (the
    directory publisher), a failure part way restores what was there, so the image is
    either published whole or not visible at all (and an update leaves the old version)."""
    with undone_on_failure(f"final step of {ref}") as rollback:
        main = default_of(converted)
        if main.flat is not None:
            if podman:
                _add_to_podman(rollback, layout, ref, main.image, main.flat)
            _link(rollback, layout, ref, converted, variant=variant)
        for directory, item, index in _records(layout, ref, converted, variant=variant):
            for name in (CONFIG_FILE, MANIFEST_FILE, INDEX_FILE):
                rollback.file(directory / name)
            rollback.created(directory)
            write_image_metadata(directory, item.manifest.raw, index, item.config.raw)
    drop_superseded_records(layout, ref, [c.image.platform for c in converted])


def drop_superseded_records(layout: Layout, ref: Reference, platforms: list[Platform]) -> None:
    """Remove the records DUCC kept for `ref`'s `platforms` under `.metadata/.multiarch/` in its
    spelling (`arm64:v8`, or every tag naming a manifest list) now that ducc's record holds
    them. Records of other platforms stay: they still protect their layers from gc."""
    for record in platform_records(layout, ref):
        if record.form is RecordForm.CVMFS_DUCC and record.platform in platforms:
            remove_record(layout, record.directory)


def remove_record(layout: Layout, directory: Path) -> None:
    """Remove a record directory and the parents it leaves empty (never `.metadata`)."""
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()
    parent = directory.parent
    stop = {layout.root / METADATA, layout.root / METADATA / MULTIARCH}
    while parent not in stop and parent != layout.root and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def _link(
    rollback: Rollback,
    layout: Layout,
    ref: Reference,
    converted: list[Converted],
    *,
    variant: bool,
) -> None:
    """The public path, or with `variant` the per-platform links and the variant symlink."""
    main = default_of(converted)
    public = layout.public_path(ref)
    rollback.file(public)
    rollback.created(public)
    if not variant and main.flat is not None:
        link_public(layout, ref, main.flat)
        return
    for item in converted:
        if item.flat is not None:
            label = platform_label(layout, item.image.platform)
            path = layout.multiarch_path(label, ref)
            rollback.file(path)
            rollback.created(path)
            link_platform(layout, label, ref, item.flat)
    link_variant(layout, ref, platform_label(layout, main.image.platform))
    for alias in ARCH_ALIASES:
        rollback.file(layout.root / MULTIARCH / alias)
    link_arch_aliases(layout)


def _records(
    layout: Layout, ref: Reference, converted: list[Converted], *, variant: bool
) -> list[tuple[Path, ResolvedImage, bytes | None]]:
    """Where each record goes, with its image and index: per platform first, then the
    image's own record, written last (it is what says the image is published)."""
    records: list[tuple[Path, ResolvedImage, bytes | None]] = []
    if variant:
        for item in converted:
            label = platform_label(layout, item.image.platform)
            directory = layout.root / METADATA / MULTIARCH / label / ref.simple_name
            records.append((directory, item.image, None))
    main = default_of(converted).image
    index = main.index.raw if main.index is not None else None
    records.append((layout.metadata_dir(ref), main, index))
    return records


def _add_to_podman(
    rollback: Rollback, layout: Layout, ref: Reference, image: ResolvedImage, flat: Path
) -> None:
    config = image.config
    store = PodmanStore(layout.podman_store)
    store.note_add(rollback, config.digest.hex)
    store.add_image(
        image_id=config.digest.hex,
        names=[ref.simple_name],
        flat_dir=flat,
        manifest=image.manifest.raw,
        config=config.raw,
        config_digest=str(config.digest),
        created=image_created(config.raw),
        size=_image_size(layout, image),
    )


def _image_size(layout: Layout, image: ResolvedImage) -> int | None:
    """The sum of the layers' tar sizes from their metadata (no walk of the flat tree);
    None when a layer's size is not recorded."""
    sizes = [read_diff_size(layout, d.digest) for d in image.manifest.layers]
    return None if None in sizes else sum(s for s in sizes if s is not None)


def image_created(config: bytes) -> datetime | None:
    """The image's creation time from its config (what `podman images` shows), in UTC, if
    valid. Year 1 at +14:00 is a valid ISO date that no UTC time can hold (OverflowError)."""
    try:
        value = json.loads(config).get("created")
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
        return when.astimezone(UTC) if when is not None else None
    except (ValueError, AttributeError, OverflowError):
        return None


def published_ok(layout: Layout, ref: Reference, *, skip_flat: bool) -> bool:
    """Whether the recorded image is really in place: its config recorded, its layers
    complete, its flat tree complete and linked.

    A cheap check (a few stats and one small read) so an unchanged tag whose products were
    damaged or removed (a layer's tree or `layers.json`, an emptied `config.json`) is
    converted again rather than trusted; `convert --repair` looks at contents too.
    """
    try:
        record = record_for(layout, ref)
    except RecordUnreadable:
        return False
    if record is None or record.label is not None:
        return False  # only DUCC's record of a manifest list: ducc records it anew
    digest = record.config
    if not _config_recorded(layout, ref, digest):
        return False
    if not all(layer_complete(layout, blob) for blob in record.layers):
        return False
    if skip_flat:
        return True
    flat = layout.flat_dir(digest)
    if not flat_complete(layout, digest):
        return False
    link = layout.public_path(ref)
    if not link.is_symlink():
        return False
    if "$(CVMFS_ARCH" in os.readlink(link):
        return any((layout.root / MULTIARCH).glob(f"*/{ref.simple_name}"))
    return link.resolve() == flat.resolve()


def _config_recorded(layout: Layout, ref: Reference, digest: Digest) -> bool:
    """`config.json` is the manifest's config (records of older runs have none)."""
    try:
        raw = (layout.metadata_dir(ref) / CONFIG_FILE).read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return Digest.of(raw, digest.algorithm) == digest
