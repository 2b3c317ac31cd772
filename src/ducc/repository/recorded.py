"""The records of published images, read in both forms a repository may hold.

ducc records `.metadata/<registry>/<repository>:<tag>/manifest.json` as the registry's bytes
(with `config.json` and, for an index, `index.json`). DUCC (`cvmfs_ducc`) wrote the same file
as Go's `json.Marshal` of an untagged struct (`SchemaVersion`, `MediaType`,
`Config{MediaType,Size,Digest}`, `Layers[...]`) and nothing else, and recorded a tag naming a
manifest list under `.metadata/.multiarch/<arch>[:<variant>]/<name>/` only. This module is the
one reader of both, for the poller, verify, gc and prune.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from ducc.errors import DuccError, RecordUnreadable
from ducc.oci.digest import Digest
from ducc.oci.platform import DEFAULT_PLATFORM, Platform, platform_of_label
from ducc.oci.reference import Reference
from ducc.repository.layout import METADATA, MULTIARCH, Layout
from ducc.repository.metadata import CONFIG_FILE, INDEX_FILE, MANIFEST_FILE

# DUCC skipped foreign layers (it never had them in `.layers`); ducc refuses such images.
_FOREIGN = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


class RecordForm(StrEnum):
    DUCC = "ducc"  # the registry's bytes, config.json and index.json (this project)
    CVMFS_DUCC = "cvmfs_ducc"  # DUCC's re-serialised Go struct, manifest.json alone


@dataclass(frozen=True, slots=True)
class Record:
    """One recorded image (or, with `label`, one platform of it)."""

    name: str  # `registry/repository:tag`
    directory: Path
    form: RecordForm
    config: Digest
    layers: tuple[Digest, ...]
    digest: Digest  # of index.json when recorded, else of manifest.json (what the poller compares)
    label: str | None = None  # the `.metadata/.multiarch/<label>` directory, as written
    diff_ids: tuple[Digest, ...] | None = None  # from config.json, when recorded

    @property
    def platform(self) -> Platform | None:
        return platform_of_label(self.label) if self.label is not None else None


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A record that cannot be read: where it is and why."""

    name: str
    directory: Path
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True, slots=True)
class RecordScan:
    """Every record under `.metadata`, and the ones that cannot be read."""

    records: tuple[Record, ...] = ()
    unreadable: tuple[UnreadableRecord, ...] = ()

    @property
    def names(self) -> list[str]:
        """Every recorded image name (readable or not), once, sorted."""
        return sorted({r.name for r in self.records} | {u.name for u in self.unreadable})

    def top_level(self) -> list[Record]:
        return [r for r in self.records if r.label is None]


def read_record(directory: Path, name: str, label: str | None = None) -> Record:
    """The record in `directory`; `RecordUnreadable` says why it cannot be read."""
    try:
        raw = (directory / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise _unreadable(directory, f"manifest.json cannot be read: {exc.strerror}") from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise _unreadable(directory, "manifest.json is not JSON") from None
    if not isinstance(doc, dict):
        raise _unreadable(directory, "manifest.json is not a JSON object")
    form = RecordForm.DUCC if "config" in doc else RecordForm.CVMFS_DUCC
    try:
        config, layers = _parse(doc, form)
    except (DuccError, KeyError, TypeError, ValueError) as exc:
        raise _unreadable(directory, f"manifest.json: {_why(exc)}") from None
    index = _read_optional(directory / INDEX_FILE) if form is RecordForm.DUCC else None
    return Record(
        name=name,
        directory=directory,
        form=form,
        config=config,
        layers=layers,
        digest=Digest.of(index if index is not None else raw),
        label=label,
        diff_ids=_diff_ids(directory) if form is RecordForm.DUCC else None,
    )


def _unreadable(directory: Path, reason: str) -> RecordUnreadable:
    return RecordUnreadable(
        f"{directory}: {reason}",
        hint="convert the image again (ducc convert -g) or unpublish it (ducc delete-image)",
    )


def _why(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def _parse(doc: dict[str, Any], form: RecordForm) -> tuple[Digest, tuple[Digest, ...]]:
    """(config digest, layer blob digests) from either form; Go's decoder is case-blind."""
    get = _field if form is RecordForm.CVMFS_DUCC else _exact
    config = get(doc, "config")
    text = get(config, "digest") if isinstance(config, dict) else None
    if not isinstance(text, str) or not text:
        raise ValueError("names no config digest")
    layers = get(doc, "layers", [])
    if layers is None and form is RecordForm.CVMFS_DUCC:
        layers = []  # a nil Go slice
    if not isinstance(layers, list):
        raise ValueError("'layers' is not a list")
    blobs = tuple(
        Digest.parse(get(layer, "digest"))
        for layer in layers
        if get(layer, "mediaType", "") not in _FOREIGN
    )
    return Digest.parse(text), blobs


def _exact(obj: Any, key: str, *default: Any) -> Any:
    if not isinstance(obj, dict):
        raise TypeError(f"expected an object holding {key!r}")
    return obj[key] if not default else obj.get(key, default[0])


def _field(obj: Any, key: str, *default: Any) -> Any:
    """`key` as Go's `encoding/json` finds it: the exact name, else any case of it."""
    if not isinstance(obj, dict):
        raise TypeError(f"expected an object holding {key!r}")
    if key in obj:
        return obj[key]
    for name, value in obj.items():
        if isinstance(name, str) and name.lower() == key.lower():
            return value
    if default:
        return default[0]
    raise KeyError(key)


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _unreadable(path.parent, f"{path.name} cannot be read: {exc.strerror}") from None


def _diff_ids(directory: Path) -> tuple[Digest, ...] | None:
    """The config's diff_ids (gc protects the image's chains with them), when recorded."""
    try:
        config = json.loads((directory / CONFIG_FILE).read_bytes())
        return tuple(Digest.parse(d) for d in config["rootfs"]["diff_ids"])
    except (OSError, ValueError, KeyError, TypeError, DuccError):
        return None


def scan_records(root: Path) -> RecordScan:
    """Every record under `R/.metadata`: the images and the per-platform records."""
    records: list[Record] = []
    unreadable: list[UnreadableRecord] = []
    for name, directory, label in _record_dirs(root / METADATA):
        try:
            records.append(read_record(directory, name, label))
        except RecordUnreadable as exc:
            unreadable.append(UnreadableRecord(name, directory, exc.message))
    return RecordScan(tuple(records), tuple(unreadable))


def _record_dirs(top: Path) -> Iterator[tuple[str, Path, str | None]]:
    """(name, directory, platform label) of every directory holding a manifest.json."""
    yield from _walk(top, None, skip=MULTIARCH)
    platforms = top / MULTIARCH
    if platforms.is_dir():
        for label_dir in sorted(platforms.iterdir()):
            if label_dir.is_dir() and not label_dir.is_symlink():
                yield from _walk(label_dir, label_dir.name)


def _walk(top: Path, label: str | None, skip: str = "") -> Iterator[tuple[str, Path, str | None]]:
    for dirpath, dirnames, filenames in os.walk(top):
        if dirpath == os.fspath(top):
            dirnames[:] = [d for d in dirnames if d != skip]
        dirnames.sort()
        if MANIFEST_FILE in filenames or MANIFEST_FILE in dirnames:
            yield os.path.relpath(dirpath, top), Path(dirpath), label
            dirnames[:] = []


def record_for(layout: Layout, ref: Reference, platform: Platform | None = None) -> Record | None:
    """What the repository records for `ref`: its own record, else the record DUCC kept for a
    manifest list under `.metadata/.multiarch/<label>/` for `platform` (default linux/amd64).
    None when there is none; `RecordUnreadable` when it cannot be read."""
    directory = layout.metadata_dir(ref)
    if (directory / MANIFEST_FILE).exists():
        return read_record(directory, ref.simple_name)
    wanted = platform or DEFAULT_PLATFORM
    for record in platform_records(layout, ref):
        if record.platform == wanted:
            return record
    return None


def platform_records(layout: Layout, ref: Reference) -> list[Record]:
    """The readable per-platform records of `ref` under `.metadata/.multiarch/*/`."""
    top = layout.root / METADATA / MULTIARCH
    if not top.is_dir():
        return []
    found = []
    for label_dir in sorted(top.iterdir()):
        directory = label_dir / ref.simple_name
        if label_dir.is_symlink() or not (directory / MANIFEST_FILE).is_file():
            continue
        try:
            found.append(read_record(directory, ref.simple_name, label_dir.name))
        except RecordUnreadable:
            continue
    return found


def recorded_digest(layout: Layout, ref: Reference) -> Digest | None:
    """The digest the poller compares: what the tag pointed to when it was published. A
    record DUCC wrote yields the digest of its own bytes, which never equals the registry's,
    so the image is looked at (and adopted when its config is unchanged)."""
    try:
        record = record_for(layout, ref)
    except RecordUnreadable:
        return None
    return record.digest if record is not None else None
