"""The podman additional image store in the repository (`R/podmanStore/`), as DUCC lays it out.

One synthetic overlay layer per image whose `diff` is a relative link to the flat tree, plus
containers/storage's `images.json`, `layers.json`, lock files and each image's manifest and
config ("big data"). Functions over the store directory only; the caller opens and publishes
the transaction. JSON files are replaced atomically; `images.json` is written last on add and
first on removal, so it never names a layer or file that is not there.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ducc import log
from ducc.errors import DigestMismatch, PodmanStoreError
from ducc.files import (
    ensure_dir,
    ensure_empty_file,
    ensure_symlink,
    remove_entry,
    tree_size,
    write_if_changed,
)
from ducc.oci.digest import Digest
from ducc.repository.rollback import Rollback

OVERLAY = "overlay"
IMAGES = "overlay-images"
LAYERS = "overlay-layers"
MANIFEST_KEY = "manifest"  # containers/storage ImageDigestBigDataKey
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LINK_ID = re.compile(r"[A-Z2-7]{26}")
_NAME = re.compile(r"[!-~]+")  # printable ASCII without spaces, as image references are
_SAFE_KEY = re.compile(r"[.0-9a-z]+")

Entry = dict[str, Any]
_log = log.get(__name__)


@dataclass(frozen=True, slots=True)
class StoreImage:
    """One image as `images.json` records it."""

    id: str
    names: tuple[str, ...]
    layer: str
    digest: str | None


def flat_layer_id(image_id: str) -> str:
    """The synthetic layer's ID: sha256 of `cvmfs-flat-layer:<image id>` (DUCC's formula)."""
    return hashlib.sha256(f"cvmfs-flat-layer:{image_id}".encode()).hexdigest()


def big_data_file_name(key: str) -> str:
    """containers/storage `makeBigDataBaseName`: keys outside `[.0-9a-z]` become `=<base64>`."""
    if _SAFE_KEY.fullmatch(key):
        return key
    return "=" + base64.standard_b64encode(key.encode()).decode()


def storage_time(when: datetime) -> str:
    """A timestamp as Go's `time.Time` writes it to JSON (RFC 3339, UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class PodmanStore:
    """The store at `root` (normally `Layout.podman_store`, a sibling of `.flat/`). A `local`
    store lives outside the repository (DUCC's `create-podman-store`): its `diff` links are
    absolute paths into the mounted repository."""

    root: Path
    local: bool = False

    @property
    def images_json(self) -> Path:
        return self.root / IMAGES / "images.json"

    @property
    def layers_json(self) -> Path:
        return self.root / LAYERS / "layers.json"

    def add_image(
        self,
        *,
        image_id: str,
        names: Sequence[str],
        flat_dir: Path,
        manifest: bytes,
        config: bytes,
        config_digest: str,
        created: datetime | None = None,
        size: int | None = None,
    ) -> None:
        """Add the image (or add `names` to it); a name is first taken from any other image.

        `size` (what `podman images` shows) is the sum of the layers' tar sizes, as Docker
        counts an image; without it the flat tree is measured, a walk of the whole tree."""
        _check_image(image_id, names, config, config_digest)
        self._check_flat_dir(flat_dir)
        when = storage_time(created or datetime.now(UTC))
        self.make_skeleton()
        big_data = {MANIFEST_KEY: manifest, config_digest: config}
        self._write_big_data(image_id, big_data)
        layer_id = self._add_layer(image_id, flat_dir, when, size)
        self._record_image(image_id, names, layer_id, big_data, when)
        _log.info("podman_image_added", image=image_id, names=list(names), layer=layer_id)

    def note_add(self, rollback: Rollback, image_id: str) -> None:
        """Note for `rollback` everything `add_image(image_id=image_id, ...)` may change."""
        layer_dir = self.root / OVERLAY / flat_layer_id(image_id)
        image_dir = self.root / IMAGES / image_id
        kept = [self.images_json, self.layers_json, layer_dir / "diff", layer_dir / "link"]
        kept += sorted(image_dir.iterdir()) if image_dir.is_dir() else []
        for path in kept:
            rollback.file(path)
        for directory in (self.root / OVERLAY / "l", self.root / OVERLAY, image_dir):
            rollback.entries(directory)
        rollback.entries(self.root / IMAGES)

    def remove_names(self, names: Iterable[str]) -> None:
        """Take `names` off whatever images carry them; images left nameless stay."""
        gone = list(names)
        images = load_json_list(self.images_json)
        updated = [_without_names(entry, gone) for entry in images]
        if updated != images:
            write_json(self.images_json, updated)
            _log.info("podman_names_removed", names=gone)

    def remove_image(self, image_id: str) -> bool:
        """Remove the image, its layer and its files; False when the store does not have it."""
        images = load_json_list(self.images_json)
        entry = next((e for e in images if e.get("id") == image_id), None)
        if entry is None:
            return False
        remaining = [e for e in images if e is not entry]
        write_json(self.images_json, remaining)
        layer_id = str(entry.get("layer") or flat_layer_id(image_id))
        if not any(e.get("layer") == layer_id for e in remaining):
            self._remove_layer(layer_id)
        remove_entry(self.root / IMAGES / image_id)
        _log.info("podman_image_removed", image=image_id, layer=layer_id)
        return True

    def images(self) -> list[StoreImage]:
        return [
            StoreImage(
                id=str(entry["id"]),
                names=tuple(entry.get("names") or ()),
                layer=str(entry.get("layer", "")),
                digest=entry.get("digest"),
            )
            for entry in load_json_list(self.images_json)
        ]

    def referenced_flat_dirs(self) -> frozenset[Path]:
        """Where the `diff` links of the images' layers lead (absolute, not resolved further)."""
        found = set()
        for image in self.images():
            diff = self.root / OVERLAY / image.layer / "diff"
            if image.layer and diff.is_symlink():
                found.add(Path(os.path.normpath(diff.parent / os.readlink(diff))))
        return frozenset(found)

    def diff_targets(self) -> frozenset[Path]:
        """Where every layer's `diff` link leads (absolute, not resolved further): flat trees,
        or, in DUCC's older per-layer store, `.layers/<xx>/<blob>/layerfs`."""
        found = set()
        for diff in (self.root / OVERLAY).glob("*/diff"):
            if diff.is_symlink():
                found.add(Path(os.path.normpath(diff.parent / os.readlink(diff))))
        return frozenset(found)

    def make_skeleton(self) -> None:
        """The directories and lock files podman needs before it opens the store read-only."""
        for directory in (self.root / OVERLAY / "l", self.root / IMAGES, self.root / LAYERS):
            ensure_dir(directory)
        ensure_empty_file(self.root / IMAGES / "images.lock")
        ensure_empty_file(self.root / LAYERS / "layers.lock")

    def _write_big_data(self, image_id: str, big_data: dict[str, bytes]) -> None:
        ensure_dir(self.root / IMAGES / image_id)
        for key, data in big_data.items():
            write_if_changed(self.root / IMAGES / image_id / big_data_file_name(key), data)

    def _record_image(
        self,
        image_id: str,
        names: Sequence[str],
        layer_id: str,
        big_data: dict[str, bytes],
        when: str,
    ) -> None:
        """The `images.json` entry, written last; `names` leave every other image."""
        images = [
            e if e.get("id") == image_id else _without_names(e, names)
            for e in load_json_list(self.images_json)
        ]
        entry = next((e for e in images if e.get("id") == image_id), None)
        if entry is None:
            entry = {"id": image_id, "created": when}
            images.append(entry)
        _fill_image_entry(entry, names, layer_id, big_data)
        write_json(self.images_json, _unique_names(images))

    def _check_flat_dir(self, flat_dir: Path) -> None:
        repository = self.root.absolute().parent
        if not self.local and not flat_dir.absolute().is_relative_to(repository):
            raise PodmanStoreError(f"flat tree {flat_dir} is outside the repository {repository}")
        if flat_dir.is_symlink() or not flat_dir.is_dir():
            raise PodmanStoreError(f"flat tree {flat_dir} is not a directory")

    def _add_layer(self, image_id: str, flat_dir: Path, when: str, size: int | None) -> str:
        """The layer directory, its links and its `layers.json` entry (size measured once)."""
        layer_id = flat_layer_id(image_id)
        layer_dir = self.root / OVERLAY / layer_id
        ensure_dir(layer_dir)
        target = (
            os.fspath(flat_dir.absolute())
            if self.local
            else os.path.relpath(flat_dir.absolute(), layer_dir.absolute())
        )
        ensure_symlink(layer_dir / "diff", target)
        link_id = self._link_id(layer_dir, layer_id)
        ensure_symlink(self.root / OVERLAY / "l" / link_id, f"../{layer_id}/diff")
        layers = load_json_list(self.layers_json)
        if not any(e.get("id") == layer_id and e.get("diff-size") is not None for e in layers):
            layers = [e for e in layers if e.get("id") != layer_id]
            measured = tree_size(flat_dir) if size is None else size
            layers.append(_layer_entry(layer_id, measured, when))
            write_json(self.layers_json, layers)
        return layer_id

    def _link_id(self, layer_dir: Path, layer_id: str) -> str:
        """The layer's short `l/` name: the one already there, else derived from its ID."""
        link_file = layer_dir / "link"
        if link_file.is_file() and not link_file.is_symlink():
            existing = link_file.read_text(encoding="ascii", errors="replace").strip()
            if _LINK_ID.fullmatch(existing):
                return existing
        link_id = base64.b32encode(bytes.fromhex(layer_id)[:16]).decode().rstrip("=")
        write_if_changed(link_file, link_id.encode())
        return link_id

    def _remove_layer(self, layer_id: str) -> None:
        layers = load_json_list(self.layers_json)
        if any(e.get("parent") == layer_id for e in layers):
            return  # a multi-layer store (DUCC's older kind) still builds on it
        remaining = [e for e in layers if e.get("id") != layer_id]
        if remaining != layers:
            write_json(self.layers_json, remaining)
        layer_dir = self.root / OVERLAY / layer_id
        link_file = layer_dir / "link"
        if link_file.is_file():
            link_id = link_file.read_text(encoding="ascii", errors="replace").strip()
            short = self.root / OVERLAY / "l" / link_id
            if _LINK_ID.fullmatch(link_id) and short.is_symlink():
                short.unlink()
        remove_entry(layer_dir)


def _check_image(image_id: str, names: Sequence[str], config: bytes, config_digest: str) -> None:
    if not _HEX64.fullmatch(image_id):
        raise PodmanStoreError(f"image ID {image_id!r} is not 64 lowercase hex digits")
    expected = Digest.parse(config_digest)
    if expected.hex != image_id:
        raise PodmanStoreError(f"image ID {image_id} is not the config digest {config_digest}")
    actual = Digest.of(config, expected.algorithm)
    if actual != expected:
        raise DigestMismatch("image config", config_digest, str(actual))
    bad = [name for name in names if not _NAME.fullmatch(name)]
    if bad:
        raise PodmanStoreError(f"image names must be printable without spaces: {bad!r}")


def _without_names(entry: Entry, names: Iterable[str]) -> Entry:
    """`entry` without `names` (a new dict when something changes, else the same one)."""
    gone = set(names)
    current = list(entry.get("names") or ())
    kept = [name for name in current if name not in gone]
    if kept == current:
        return entry
    changed = {key: value for key, value in entry.items() if key != "names"}
    if kept:
        changed["names"] = kept
    return changed


def _unique_names(images: list[Entry]) -> list[Entry]:
    """Each name on the newest (last) image only: podman refuses a read-only store otherwise.

    DUCC's own writer left a moved tag on the old image too; such stores are repaired here.
    """
    seen: set[str] = set()
    unique = []
    for entry in reversed(images):
        unique.append(_without_names(entry, seen))
        seen.update(entry.get("names") or ())
    return unique[::-1]


def _fill_image_entry(
    entry: Entry, names: Sequence[str], layer_id: str, big_data: dict[str, bytes]
) -> None:
    """Names merged in; the fields containers/image reads (digest, big data) filled in."""
    merged = list(entry.get("names") or ())
    merged += [name for name in dict.fromkeys(names) if name not in merged]
    if merged:
        entry["names"] = merged
    entry["digest"] = str(Digest.of(big_data[MANIFEST_KEY]))
    entry["layer"] = layer_id
    # containers/image decodes `metadata` as JSON; an empty string fails to decode.
    entry.setdefault("metadata", "{}")
    entry["big-data-names"] = list(big_data)
    entry["big-data-sizes"] = {key: len(data) for key, data in big_data.items()}
    entry["big-data-digests"] = {key: str(Digest.of(data)) for key, data in big_data.items()}


def _layer_entry(layer_id: str, size: int, when: str) -> Entry:
    # diff-digest must be non-empty or containers/image fails with "size for layer is
    # unknown"; no tar stream exists for this layer, so DUCC's placeholder is kept.
    return {
        "id": layer_id,
        "created": when,
        "diff-digest": f"sha256:{layer_id}",
        "diff-size": size,
    }


def load_json_list(path: Path) -> list[Entry]:
    """A containers/storage JSON list (`images.json`, `layers.json`); missing means empty."""
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError:
        return []
    except (ValueError, UnicodeDecodeError) as error:
        raise PodmanStoreError(f"{path}: not valid JSON: {error}") from error
    if not isinstance(value, list) or not all(isinstance(e, dict) and "id" in e for e in value):
        raise PodmanStoreError(f"{path}: expected a list of objects with an id")
    return value


def write_json(path: Path, value: list[Entry]) -> bool:
    """Atomically, compact as containers/storage writes it; untouched when unchanged."""
    return write_if_changed(path, json.dumps(value, separators=(",", ":")).encode())
