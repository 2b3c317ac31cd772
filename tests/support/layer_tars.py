"""Tiny layer tars built in tests from a compact entry list, and helpers to apply them."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from ducc.layers.apply import ApplyMode, ApplyStats, apply_layer
from ducc.layers.limits import Limits
from ducc.layers.stream import LayerStream
from ducc.oci.digest import Digest
from ducc.pipeline.unpack import LayerSource
from tests.support.images import Image, make_image, make_layer, write_oci_layout

TAR = "application/vnd.oci.image.layer.v1.tar"
TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
TAR_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MTIME = 1_600_000_000

_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}
_MODES = {"dir": 0o755, "symlink": 0o777}


@dataclass(frozen=True)
class E:
    """One tar entry: `kind` is a key of _TYPES or a raw one-byte tar type."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    link: str = ""
    mtime: float = MTIME
    pax: dict[str, str] = field(default_factory=dict)
    xattrs: dict[str, bytes] = field(default_factory=dict)
    major: int = 0
    minor: int = 0
    size: int | None = None  # a lying header size (hostile tests)


def f(name: str, data: bytes = b"", **kw: object) -> E:
    return E(name, "file", data, **kw)  # type: ignore[arg-type]


def d(name: str, **kw: object) -> E:
    return E(name, "dir", **kw)  # type: ignore[arg-type]


def sym(name: str, target: str, **kw: object) -> E:
    return E(name, "symlink", link=target, **kw)  # type: ignore[arg-type]


def hard(name: str, target: str, **kw: object) -> E:
    return E(name, "hardlink", link=target, **kw)  # type: ignore[arg-type]


def tarinfo(entry: E) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.name)
    info.type = _TYPES.get(entry.kind, entry.kind.encode())
    info.mode = entry.mode if entry.mode is not None else _MODES.get(entry.kind, 0o644)
    info.uid, info.gid = entry.uid, entry.gid
    info.linkname = entry.link
    info.mtime = entry.mtime
    info.devmajor, info.devminor = entry.major, entry.minor
    info.size = len(entry.data) if entry.size is None else entry.size
    pax = dict(entry.pax)
    for name, value in entry.xattrs.items():
        pax[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    info.pax_headers = pax
    return info


def tar_bytes(entries: Iterable[E], *, fmt: int = tarfile.PAX_FORMAT, end: bool = True) -> bytes:
    """The tar archive of `entries`; without `end` the end-of-archive blocks are cut off."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as archive:
        for entry in entries:
            info = tarinfo(entry)
            data = io.BytesIO(entry.data) if info.type in (tarfile.REGTYPE, b"0") else None
            archive.addfile(info, data)
    raw = out.getvalue()
    return raw if end else raw[: _archive_end(raw)]


def _archive_end(raw: bytes) -> int:
    end = len(raw)
    while end >= 512 and raw[end - 512 : end] == bytes(512):
        end -= 512
    return end


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def zst(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)


def stream_of(
    data: bytes,
    media_type: str = TAR,
    *,
    tar: bytes | None = None,
    verify: bool = True,
    name: str = "sha256:test",
) -> LayerStream:
    """A LayerStream over `data` (the blob); digests are expected when `verify` is set."""
    tar = data if tar is None else tar
    return LayerStream(
        io.BytesIO(data),
        media_type,
        blob=Digest.of(data) if verify else None,
        size=len(data) if verify else None,
        diff_id=Digest.of(tar) if verify else None,
        name=name,
    )


def apply(
    root: Path,
    layer: Sequence[E] | bytes,
    *,
    mode: ApplyMode = ApplyMode.CHANGESET,
    limits: Limits = Limits(),  # noqa: B008
    lower: Path | None = None,
    privileged: bool | None = None,
    name: str = "sha256:test",
) -> ApplyStats:
    data = layer if isinstance(layer, bytes) else tar_bytes(layer)
    return apply_layer(
        root,
        stream_of(data, name=name),
        mode=mode,
        limits=limits,
        name=name,
        lower=lower,
        privileged=privileged,
    )


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a user sees of a tree: per path its type, mode, owner, content or target,
    xattrs, inode number (hard-link identity) and mtime. Link counts are left out: a hard-link clone
    of the tree shares the inodes and so raises them."""
    found: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            rel = os.path.relpath(path, root)
            found[rel] = (*_describe(path, info), info.st_ino, info.st_mtime_ns)
    return found


def _describe(path: str, info: os.stat_result) -> tuple[object, ...]:
    mode = info.st_mode
    if os.path.islink(path):
        body: object = os.readlink(path)
    elif os.path.isfile(path):
        body = Path(path).read_bytes()
    else:
        body = None
    names = sorted(os.listxattr(path, follow_symlinks=False))
    xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
    return (mode, info.st_uid, info.st_gid, body, xattrs)


def layer_sources(layout: Path, image: Image) -> list[LayerSource]:
    """The layers of `image`, read from the blobs of the OCI layout it was written to."""
    sources = []
    for layer, diff_id in zip(
        image.layers, json.loads(image.config)["rootfs"]["diff_ids"], strict=True
    ):
        digest = Digest.parse(layer.digest)
        path = layout / "blobs" / digest.algorithm / digest.hex
        sources.append(
            LayerSource(
                name=layer.digest,
                media_type=layer.media_type,
                blob=digest,
                size=len(layer.blob),
                diff_id=Digest.parse(diff_id),
                open=lambda path=path: path.open("rb"),  # type: ignore[misc]
            )
        )
    return sources


def write_image(layout: Path, tag: str, layers: Sequence[Sequence[E]]) -> list[LayerSource]:
    """Write an image of gzip layers as an OCI layout (`<layout>:<tag>` for umoci); its
    layers as `unpack_layers` takes them."""
    image = make_image([make_layer(tar_bytes(entries)) for entries in layers])
    write_oci_layout(layout, {tag: image})
    return layer_sources(layout, image)
