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

from ducc.digest import Digest
from ducc.errors import DuccError
from ducc.layout import METADATA, MULTIARCH, Layout
from ducc.links import link_arch_aliases, link_platform, link_public, link_variant
from ducc.metadata import read_diff_size, recorded_config, write_image_metadata
from ducc.podman import PodmanStore
from ducc.products import flat_complete
from ducc.reference import Reference
from ducc.registry.manifests import ResolvedImage

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
    podman entry) and before the metadata that records the image as published: where no
    transaction can roll back (the directory publisher), a failure leaves no link behind, and
    a crash between links and metadata only makes the next run convert the image again."""
    main = default_of(converted)
    if main.flat is not None:
        if podman:
            _add_to_podman(layout, ref, main.image, main.flat)
        if variant:
            for item in converted:
                if item.flat is not None:
                    link_platform(layout, item.image.platform.label, ref, item.flat)
            link_variant(layout, ref, main.image.platform.label)
            link_arch_aliases(layout)
        else:
            link_public(layout, ref, main.flat)
    if variant:
        for item in converted:
            label = item.image.platform.label
            directory = layout.root / METADATA / MULTIARCH / label / ref.simple_name
            write_image_metadata(directory, item.image.manifest.raw, None, item.image.config.raw)
    index = main.image.index.raw if main.image.index is not None else None
    write_image_metadata(
        layout.metadata_dir(ref), main.image.manifest.raw, index, main.image.config.raw
    )


def _add_to_podman(layout: Layout, ref: Reference, image: ResolvedImage, flat: Path) -> None:
    config = image.config
    PodmanStore(layout.podman_store).add_image(
        image_id=config.digest.hex,
        names=[ref.simple_name],
        flat_dir=flat,
        manifest=image.manifest.raw,
        config=config.raw,
        config_digest=str(config.digest),
        created=_created(config.raw),
        size=_image_size(layout, image),
    )


def _image_size(layout: Layout, image: ResolvedImage) -> int | None:
    """The sum of the layers' tar sizes from their metadata (no walk of the flat tree);
    None when a layer's size is not recorded."""
    sizes = [read_diff_size(layout, d.digest) for d in image.manifest.layers]
    return None if None in sizes else sum(s for s in sizes if s is not None)


def _created(config: bytes) -> datetime | None:
    """The image's creation time from its config (what `podman images` shows), in UTC, if
    valid. Year 1 at +14:00 is a valid ISO date that no UTC time can hold (OverflowError)."""
    try:
        value = json.loads(config).get("created")
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
        return when.astimezone(UTC) if when is not None else None
    except (ValueError, AttributeError, OverflowError):
        return None


def published_ok(layout: Layout, ref: Reference, *, skip_flat: bool) -> bool:
    """Whether the recorded image is really in place: its flat tree complete and linked.

    A cheap check (a few stats) so an unchanged tag whose products were damaged or
    removed is converted again rather than trusted.
    """
    config = recorded_config(layout, ref)
    if config is None:
        return False
    if skip_flat:
        return True
    try:
        digest = Digest.parse(config)
    except DuccError:
        return False
    flat = layout.flat_dir(digest)
    if not flat_complete(layout, digest):
        return False
    link = layout.public_path(ref)
    if not link.is_symlink():
        return False
    if "$(CVMFS_ARCH" in os.readlink(link):
        return any((layout.root / MULTIARCH).glob(f"*/{ref.simple_name}"))
    return link.resolve() == flat.resolve()
