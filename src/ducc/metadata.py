"""The repository's own record of what is published: image and layer metadata files.

`.metadata/<registry>/<repository>:<tag>/manifest.json` holds the registry's manifest bytes
(and `index.json` the index bytes when the tag names an index), so the digest of what is
published is read from the repository itself; losing ducc's local state never gives a
wrong answer. Layers carry `layers.json` (their completion mark) and `origin.json`.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from ducc.digest import Digest
from ducc.files import replace_file
from ducc.layout import METADATA, MULTIARCH, Layout
from ducc.reference import Reference

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.json"
CONFIG_FILE = "config.json"
LAYERS_FILE = "layers.json"
ORIGIN_FILE = "origin.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` so that a reader sees the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, data)


def recorded_images(root: Path, *, platforms: bool = False) -> list[tuple[str, Path]]:
    """(`registry/repository:tag`, metadata directory) of every recorded image; with
    `platforms`, also the per-platform records under `.metadata/.multiarch/`."""
    top = root / METADATA
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == top and not platforms:
            dirnames[:] = [d for d in dirnames if d != MULTIARCH]
        if MANIFEST_FILE in filenames:
            found.append((os.path.relpath(dirpath, top), Path(dirpath)))
            dirnames[:] = []
    return sorted(found)


def recorded_digest(layout: Layout, ref: Reference) -> Digest | None:
    """The digest of what the tag pointed to when it was published, or None."""
    directory = layout.metadata_dir(ref)
    for name in (INDEX_FILE, MANIFEST_FILE):
        try:
            return Digest.of((directory / name).read_bytes())
        except FileNotFoundError:
            continue
        except OSError:
            return None
    return None


def recorded_config(layout: Layout, ref: Reference) -> str | None:
    """The config digest named by the published manifest, or None if unreadable."""
    try:
        doc = json.loads((layout.metadata_dir(ref) / MANIFEST_FILE).read_bytes())
        digest = doc["config"]["digest"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return digest if isinstance(digest, str) else None


def write_image_metadata(
    directory: Path, manifest: bytes, index: bytes | None, config: bytes | None = None
) -> None:
    """Record a published image: its config (so gc knows its chains), the manifest, and the
    index it was selected from. The manifest is written after the config: it is the record."""
    if config is not None:
        write_atomic(directory / CONFIG_FILE, config)
    write_atomic(directory / MANIFEST_FILE, manifest)
    if index is None:
        (directory / INDEX_FILE).unlink(missing_ok=True)
    else:
        write_atomic(directory / INDEX_FILE, index)


def layer_complete(layout: Layout, blob: Digest) -> bool:
    """A layer counts only with its literal tree and its completion metadata."""
    return (layout.layer_metadata(blob) / LAYERS_FILE).is_file() and layout.layerfs(blob).is_dir()


def write_layer_info(layout: Layout, blob: Digest, diff_id: Digest, diff_size: int) -> None:
    """`layers.json` as DUCC writes it: the layer's completion mark."""
    info = [
        {
            "id": diff_id.hex,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "compressed-diff-digest": str(blob),
            "diff-digest": str(diff_id),
            "diff-size": diff_size,
        }
    ]
    write_atomic(layout.layer_metadata(blob) / LAYERS_FILE, json.dumps(info).encode())


def add_layer_origin(layout: Layout, blob: Digest, config: Digest) -> bool:
    """Name `config` in the layer's `origin.json`; False when it was there already."""
    origins = read_origins(layout, blob)
    if str(config) in origins:
        return False
    origins.append(str(config))
    doc = json.dumps({"origin": origins}).encode()
    write_atomic(layout.layer_metadata(blob) / ORIGIN_FILE, doc)
    return True


def read_origins(layout: Layout, blob: Digest) -> list[str]:
    try:
        doc: Any = json.loads((layout.layer_metadata(blob) / ORIGIN_FILE).read_bytes())
    except (OSError, ValueError):
        return []
    origins = doc.get("origin") if isinstance(doc, dict) else None
    return [o for o in origins if isinstance(o, str)] if isinstance(origins, list) else []


def read_diff_size(layout: Layout, blob: Digest) -> int | None:
    try:
        doc = json.loads((layout.layer_metadata(blob) / LAYERS_FILE).read_bytes())
        size = doc[0]["diff-size"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
    return size if isinstance(size, int) else None
