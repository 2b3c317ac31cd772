"""An OCI image layout on disk (image-spec `image-layout.md`), written from layer tars, and
the `LayerSource`s that read the same blobs."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ducc.digest import Digest
from ducc.unpack import LayerSource

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"


@dataclass(frozen=True)
class Image:
    layout: Path
    tag: str
    config: Digest
    layers: tuple[LayerSource, ...]

    @property
    def reference(self) -> str:
        """`<layout>:<tag>` as umoci takes it."""
        return f"{self.layout}:{self.tag}"


def _put(layout: Path, data: bytes) -> Digest:
    digest = Digest.of(data)
    path = layout / "blobs" / digest.algorithm / digest.hex
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return digest


def _source(path: Path, blob: Digest, size: int, diff_id: Digest) -> LayerSource:
    return LayerSource(
        name=str(blob),
        media_type=LAYER_GZIP,
        blob=blob,
        size=size,
        diff_id=diff_id,
        open=lambda: open(path, "rb"),  # the consumer closes it
    )


def write_image(
    layout: Path, tag: str, tars: Sequence[bytes], *, level: int = 6, blobs: Sequence[bytes] = ()
) -> Image:
    """Write an image of gzip layers (or the given ready `blobs`) into `layout`."""
    (layout / "blobs").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    compressed = list(blobs) or [gzip.compress(tar, compresslevel=level, mtime=0) for tar in tars]
    descriptors, sources = [], []
    for tar, blob in zip(tars, compressed, strict=True):
        digest = _put(layout, blob)
        descriptors.append({"mediaType": LAYER_GZIP, "digest": str(digest), "size": len(blob)})
        path = layout / "blobs" / digest.algorithm / digest.hex
        sources.append(_source(path, digest, len(blob), Digest.of(tar)))
    config = _put(layout, _config([s.diff_id for s in sources]))
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": str(config), "size": _size(layout, config)},
            "layers": descriptors,
        }
    ).encode()
    _write_index(layout, tag, _put(layout, manifest), len(manifest))
    return Image(layout, tag, config, tuple(sources))


def _config(diff_ids: list[Digest]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [str(d) for d in diff_ids]},
            "history": [{"created_by": "tests"} for _ in diff_ids],
        }
    ).encode()


def _size(layout: Path, digest: Digest) -> int:
    return os.path.getsize(layout / "blobs" / digest.algorithm / digest.hex)


def _write_index(layout: Path, tag: str, manifest: Digest, size: int) -> None:
    index_path = layout / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2}
    entries = [
        m
        for m in index.get("manifests", [])
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ]
    entries.append(
        {
            "mediaType": MANIFEST,
            "digest": str(manifest),
            "size": size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }
    )
    index["manifests"] = entries
    index_path.write_text(json.dumps(index))
