"""Build container images in memory for tests: tar layers, configs, manifests, indexes.

Images built here are pushed to a real registry (`push_image`, `push_index`) or written as
an OCI image layout (`write_oci_layout`) for peer tools such as umoci and skopeo.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import requests
import zstandard

Compression = Literal["gzip", "zstd", "none"]
Format = Literal["oci", "docker"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES: dict[tuple[Format, Compression], str] = {
    ("oci", "gzip"): "application/vnd.oci.image.layer.v1.tar+gzip",
    ("oci", "zstd"): "application/vnd.oci.image.layer.v1.tar+zstd",
    ("oci", "none"): "application/vnd.oci.image.layer.v1.tar",
    ("docker", "gzip"): "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ("docker", "none"): "application/vnd.docker.image.rootfs.diff.tar",
}
FIXED_MTIME = 1_700_000_000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """One tar entry. `kind` is file, dir, symlink, hardlink, fifo, char or block."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    linkname: str = ""
    mtime: int = FIXED_MTIME
    xattrs: dict[str, bytes] = field(default_factory=dict)
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def file(name: str, data: bytes | str = b"", mode: int = 0o644, **kw: object) -> Entry:
    raw = data.encode() if isinstance(data, str) else data
    return Entry(name, "file", raw, mode, **kw)  # type: ignore[arg-type]


def directory(name: str, mode: int = 0o755, **kw: object) -> Entry:
    return Entry(name, "dir", mode=mode, **kw)  # type: ignore[arg-type]


def symlink(name: str, target: str, **kw: object) -> Entry:
    return Entry(name, "symlink", linkname=target, mode=0o777, **kw)  # type: ignore[arg-type]


def hardlink(name: str, target: str, **kw: object) -> Entry:
    return Entry(name, "hardlink", linkname=target, **kw)  # type: ignore[arg-type]


def whiteout(path: str) -> Entry:
    """The OCI whiteout marker that deletes `path` from lower layers."""
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(directory_path: str) -> Entry:
    """The OCI opaque marker that hides everything below `directory_path` in lower layers."""
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq")


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
}


def build_tar(entries: Sequence[Entry]) -> bytes:
    """A PAX tar holding `entries` in the given order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = _TYPES[entry.kind]
            info.mode = entry.mode if entry.mode is not None else _default_mode(entry.kind)
            info.uid, info.gid, info.mtime = entry.uid, entry.gid, entry.mtime
            info.linkname = entry.linkname
            info.devmajor, info.devminor = entry.devmajor, entry.devminor
            pax = dict(entry.pax)
            for key, value in entry.xattrs.items():
                pax[f"SCHILY.xattr.{key}"] = value.decode("utf-8", "surrogateescape")
            info.pax_headers = pax
            if entry.kind == "file":
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return out.getvalue()


def _default_mode(kind: str) -> int:
    return {"dir": 0o755, "symlink": 0o777}.get(kind, 0o644)


def compress(data: bytes, compression: Compression) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    return data


@dataclass(frozen=True)
class Layer:
    """A layer blob; `claimed_diff_id` (raw blobs, see hostile.raw_layer) is what the config
    names instead of the digest of `tar`."""

    tar: bytes
    blob: bytes
    media_type: str
    claimed_diff_id: str | None = None

    @property
    def digest(self) -> str:
        return sha256(self.blob)

    @property
    def diff_id(self) -> str:
        return self.claimed_diff_id or sha256(self.tar)

    def descriptor(self) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.blob)}


def make_layer(
    entries: Sequence[Entry] | bytes, compression: Compression = "gzip", fmt: Format = "oci"
) -> Layer:
    """A layer from entries (or ready tar bytes), compressed as asked."""
    tar = entries if isinstance(entries, bytes) else build_tar(entries)
    return Layer(tar, compress(tar, compression), LAYER_TYPES[(fmt, compression)])


@dataclass(frozen=True)
class Image:
    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes
    manifest_type: str
    config_type: str
    platform: dict[str, str]

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    def descriptor(self) -> dict[str, object]:
        return {
            "mediaType": self.manifest_type,
            "digest": self.digest,
            "size": len(self.manifest),
            "platform": self.platform,
        }


def make_image(
    layers: Sequence[Layer],
    *,
    fmt: Format = "oci",
    env: Sequence[str] = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",),
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = ("/bin/sh",),
    architecture: str = "amd64",
    os_name: str = "linux",
    variant: str | None = None,
    diff_ids: Sequence[str] | None = None,
    labels: dict[str, str] | None = None,
) -> Image:
    """A single-platform image; `diff_ids` overrides the config's (for mismatch tests)."""
    platform = {"architecture": architecture, "os": os_name}
    if variant:
        platform["variant"] = variant
    config_doc: dict[str, object] = {
        **platform,
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Env": list(env),
            "Entrypoint": list(entrypoint) if entrypoint is not None else None,
            "Cmd": list(cmd) if cmd is not None else None,
            "Labels": labels or {},
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": list(diff_ids) if diff_ids is not None else [x.diff_id for x in layers],
        },
    }
    config = json.dumps(config_doc, sort_keys=True).encode()
    config_type = OCI_CONFIG if fmt == "oci" else DOCKER_CONFIG
    manifest_type = OCI_MANIFEST if fmt == "oci" else DOCKER_MANIFEST
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {"mediaType": config_type, "digest": sha256(config), "size": len(config)},
        "layers": [x.descriptor() for x in layers],
    }
    manifest = json.dumps(manifest_doc, indent=3).encode()
    return Image(tuple(layers), config, manifest, manifest_type, config_type, platform)


@dataclass(frozen=True)
class Index:
    images: tuple[Image, ...]
    raw: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.raw)


def make_index(
    images: Sequence[Image], *, fmt: Format = "oci", extra: Sequence[dict[str, object]] = ()
) -> Index:
    """An index (or Docker manifest list) of `images`, plus raw `extra` descriptors."""
    media_type = OCI_INDEX if fmt == "oci" else DOCKER_LIST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [image.descriptor() for image in images] + list(extra),
    }
    return Index(tuple(images), json.dumps(doc, indent=2).encode(), media_type)


class Pusher:
    """Pushes blobs and manifests through a registry's push API (monolithic uploads)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()

    def blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        if self.session.head(url, timeout=30).status_code == 200:
            return digest
        start = self.session.post(f"{self.base_url}/v2/{repository}/blobs/uploads/", timeout=30)
        start.raise_for_status()
        location = start.headers["Location"]
        if location.startswith("/"):
            location = self.base_url + location
        sep = "&" if "?" in location else "?"
        put = self.session.put(
            f"{location}{sep}digest={digest}",
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=120,
        )
        put.raise_for_status()
        return digest

    def manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> None:
        response = self.session.put(
            f"{self.base_url}/v2/{repository}/manifests/{reference}",
            data=raw,
            headers={"Content-Type": media_type},
            timeout=30,
        )
        response.raise_for_status()

    def image(self, repository: str, tag: str | None, image: Image) -> str:
        """Push `image` (blobs, config, manifest); tag it when `tag` is given."""
        for layer in image.layers:
            self.blob(repository, layer.blob)
        self.blob(repository, image.config)
        self.manifest(repository, tag or image.digest, image.manifest, image.manifest_type)
        return image.digest

    def index(self, repository: str, tag: str, index: Index) -> str:
        for image in index.images:
            self.image(repository, None, image)
        self.manifest(repository, tag, index.raw, index.media_type)
        return index.digest

    def delete_tag_target(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest: every tag pointing at it vanishes."""
        response = self.session.delete(
            f"{self.base_url}/v2/{repository}/manifests/{digest}", timeout=30
        )
        response.raise_for_status()


def write_oci_layout(directory: Path, tags: dict[str, Image]) -> None:
    """An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`) holding `tags`."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    manifests = []
    for tag, image in tags.items():
        for data in [*(x.blob for x in image.layers), image.config, image.manifest]:
            (blobs / sha256(data).split(":")[1]).write_bytes(data)
        descriptor = image.descriptor()
        descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
        manifests.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    (directory / "index.json").write_text(json.dumps(index))


def host_rootfs_entries(programs: Sequence[str] = ("/bin/sh",)) -> list[Entry]:
    """A minimal Debian-style root filesystem from this machine's files: the programs and
    the libraries `ldd` lists, under usrmerge symlinks (`bin -> usr/bin`, `lib -> usr/lib`)."""
    wanted = [p for program in programs for p in (program, *_libraries(program))]
    files = {_usr_name(os.path.realpath(p)) for p in wanted}
    links = {_usr_name(p): "/" + _usr_name(os.path.realpath(p)) for p in wanted}
    entries = [symlink(name, "usr/" + name) for name in ("bin", "lib", "lib64")]
    entries.insert(1, symlink("sbin", "usr/bin"))
    made: set[str] = set()
    for name in sorted(files | set(links)):
        for parent in reversed(Path(name).parents[:-1]):
            if str(parent) not in made:
                made.add(str(parent))
                entries.append(directory(str(parent)))
        if name in files:
            entries.append(file(name, Path("/" + name).read_bytes(), mode=0o755))
        elif links[name] != "/" + name:
            entries.append(symlink(name, links[name]))
    return entries


def _usr_name(path: str) -> str:
    rel = os.path.normpath(path).lstrip("/")
    return rel if rel.startswith("usr/") else f"usr/{rel}"


def _libraries(program: str) -> list[str]:
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    out = subprocess.run([ldd, program], capture_output=True, text=True, check=False).stdout
    return [w for line in out.splitlines() for w in line.split() if w.startswith("/")]
