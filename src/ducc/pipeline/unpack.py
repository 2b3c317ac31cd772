"""`ducc unpack`: an image's layers applied in order into one directory, its flat root
filesystem (like `umoci unpack` or `crane export`, with OCI changeset semantics).

Each layer is read once, straight from the registry: blob digest, decompression, diff_id
and application in one streaming pass. A failure leaves the destination as it was: empty,
or absent if it was.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ducc import log
from ducc.errors import InputError
from ducc.layers.apply import ApplyMode, ApplyStats, apply_layer
from ducc.layers.limits import Limits
from ducc.layers.stage import remove_tree
from ducc.layers.stream import READ_AHEAD_BYTES, LayerStream
from ducc.oci.digest import BinaryReadable, Digest
from ducc.oci.model import Descriptor
from ducc.oci.platform import Platform
from ducc.oci.reference import Reference
from ducc.progress import BARS, Advance, CountingReader
from ducc.registry.blobs import open_blob
from ducc.registry.client import Registries, RegistryClient
from ducc.registry.manifests import ResolvedImage, resolve


@dataclass(frozen=True, slots=True)
class LayerSource:
    """One layer as the manifest and config describe it, and how to open its blob.

    `verified`: what `open` returns checks the blob digest and size itself (the registry
    client's blob stream does), so it is not hashed a second time.
    """

    name: str
    media_type: str
    blob: Digest
    size: int
    diff_id: Digest
    open: Callable[[], BinaryReadable]
    verified: bool = False


@dataclass(frozen=True, slots=True)
class UnpackStats:
    layers: tuple[ApplyStats, ...]

    @property
    def entries(self) -> int:
        return sum(layer.entries for layer in self.layers)

    @property
    def bytes(self) -> int:
        return sum(layer.bytes for layer in self.layers)


@dataclass(frozen=True, slots=True)
class UnpackedImage:
    image: ResolvedImage
    stats: UnpackStats


def unpack_image(
    registries: Registries,
    ref: Reference,
    dest: Path,
    *,
    platform: Platform | None = None,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
) -> UnpackedImage:
    """Pull `ref` (its `platform` entry when it is an index, default linux/amd64) and write
    its flat root filesystem into `dest` (missing or empty)."""
    if ref.is_wildcard:
        raise InputError(f"{ref}: a wildcard names many images; unpack takes one")
    check_destination(dest)
    client = registries.client(ref)
    [image] = resolve(client, ref, platform=platform)
    sources = registry_layers(client, image)
    return UnpackedImage(image, unpack_layers(dest, sources, limits=limits))


def registry_layers(client: RegistryClient, image: ResolvedImage) -> list[LayerSource]:
    """The image's layers as sources streaming from the registry (manifest and config were
    checked to agree on their number)."""
    repository = image.reference.repository

    def opener(descriptor: Descriptor) -> Callable[[], BinaryReadable]:
        return lambda: open_blob(client, repository, descriptor)

    return [
        LayerSource(
            name=str(descriptor.digest),
            media_type=descriptor.media_type,
            blob=descriptor.digest,
            size=descriptor.size,
            diff_id=diff_id,
            open=opener(descriptor),
            verified=True,
        )
        for descriptor, diff_id in zip(image.manifest.layers, image.config.diff_ids, strict=True)
    ]


def check_destination(dest: Path) -> None:
    """`dest` must be missing or an empty directory (InputError otherwise)."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise InputError(f"{dest} exists and is not a directory")
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"{dest} is not empty", hint="unpack into a new or empty directory")


def unpack_layers(
    dest: Path,
    layers: Sequence[LayerSource],
    *,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
) -> UnpackStats:
    """Apply `layers` (base first) to `dest`, which must be missing or an empty directory."""
    created = _prepare(dest)
    before = os.lstat(dest)
    results: list[ApplyStats] = []
    try:
        for layer in layers:
            results.append(_apply(dest, layer, limits))
    except BaseException:
        _clear(dest, before, remove=created)
        raise
    return UnpackStats(tuple(results))


def _prepare(dest: Path) -> bool:
    """Make sure `dest` is an empty directory; True when it was created here."""
    check_destination(dest)
    if dest.exists():
        return False
    dest.mkdir(parents=True)
    os.chmod(dest, 0o755)  # noqa: S103 - a root filesystem is world-readable
    return True


def _apply(dest: Path, layer: LayerSource, limits: Limits) -> ApplyStats:
    with BARS.task(f"unpack {layer.blob.hex[:12]}", layer.size) as advance:
        return _apply_counted(dest, layer, limits, advance)


def _apply_counted(dest: Path, layer: LayerSource, limits: Limits, advance: Advance) -> ApplyStats:
    raw = layer.open()
    try:
        stream = LayerStream(
            CountingReader(raw, advance),
            layer.media_type,
            blob=layer.blob,
            size=layer.size,
            diff_id=layer.diff_id,
            name=layer.name,
            max_bytes=limits.max_bytes + READ_AHEAD_BYTES,  # a backstop: entries are checked
            blob_verified=layer.verified,
        )
        stats = apply_layer(dest, stream, mode=ApplyMode.CHANGESET, limits=limits, name=layer.name)
    finally:
        close = getattr(raw, "close", None)
        if callable(close):
            close()
    log.get("unpack").info(
        "layer_applied", layer=layer.name, entries=stats.entries, bytes=stats.bytes
    )
    return stats


def _clear(dest: Path, before: os.stat_result, *, remove: bool) -> None:
    """Undo a failed unpack: remove `dest` if it was created here, else empty it and give it
    back its mode and owner (a layer's root entry may have changed them)."""
    if remove:
        remove_tree(dest)
        return
    with contextlib.suppress(FileNotFoundError):
        for child in os.listdir(dest):
            remove_tree(dest / child)
        os.chmod(dest, stat.S_IMODE(before.st_mode))
        if os.geteuid() == 0:
            os.chown(dest, before.st_uid, before.st_gid)
