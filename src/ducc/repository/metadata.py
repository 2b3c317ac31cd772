"""The repository's own record of what is published: writing image and layer metadata.

`.metadata/<registry>/<repository>:<tag>/manifest.json` holds the registry's manifest bytes
(and `index.json` the index bytes when the tag names an index), so the digest of what is
published is read from the repository itself; losing ducc's local state never gives a
wrong answer (`recorded.py` reads records, DUCC's too). Layers carry `layers.json` (their
completion mark) and `origin.json`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ducc.errors import DuccError
from ducc.files import replace_file
from ducc.oci.digest import Digest
from ducc.repository.layout import Layout

MANIFEST_FILE = "manifest.json"
INDEX_FILE = "index.json"
CONFIG_FILE = "config.json"
LAYERS_FILE = "layers.json"
ORIGIN_FILE = "origin.json"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `path` so that a reader sees the old content or the new, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, data)


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


def read_diff_id(layout: Layout, blob: Digest) -> Digest | None:
    """The layer's diff_id as its `layers.json` records it (ducc's and DUCC's alike)."""
    try:
        doc = json.loads((layout.layer_metadata(blob) / LAYERS_FILE).read_bytes())
        return Digest.parse(doc[0]["diff-digest"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, DuccError):
        return None
