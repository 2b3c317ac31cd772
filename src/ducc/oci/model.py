"""The OCI / Docker image model: media types, descriptors, manifests, indexes and configs.

Pure data, no I/O. `parse_manifest` and `parse_config` validate registry bytes hard and raise
`ManifestError` with a message saying what is wrong; the raw bytes are kept because they, not
a re-serialisation, are what the digest names (distribution-spec "Pulling manifests").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ducc.errors import ManifestError
from ducc.oci.digest import Digest
from ducc.oci.platform import Platform, name_problem, normalize_platform
from ducc.oci.strict_json import (
    decode_json,
    get_int,
    get_object,
    get_str,
    get_str_list,
    get_str_map,
    parse_digest,
    require_list,
    require_object,
)

__all__ = [
    "Compression",
    "Descriptor",
    "ImageConfig",
    "ImageIndex",
    "ImageManifest",
    "check_config_descriptor",
    "check_config_matches",
    "layer_compression",
    "parse_config",
    "parse_manifest",
]

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
# One Accept header listing all four; without the index types a registry may down-convert
# a multi-platform tag, without the OCI types some answer MANIFEST_UNKNOWN.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
# Content types that say nothing about the manifest kind; the body decides then.
_GENERIC_TYPES = frozenset({"application/json", "application/octet-stream", "text/plain", ""})

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 16 * 1024 * 1024
MAX_BLOB_SIZE = 1 << 40  # 1 TiB: a larger layer is a lie or an attack
MAX_INDEX_ENTRIES = 1024
MAX_LAYERS = 1024


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


_LAYER_COMPRESSION = {
    OCI_LAYER: Compression.NONE,
    OCI_LAYER_GZIP: Compression.GZIP,
    OCI_LAYER_ZSTD: Compression.ZSTD,
    DOCKER_LAYER: Compression.NONE,
    DOCKER_LAYER_GZIP: Compression.GZIP,
    DOCKER_LAYER_ZSTD: Compression.ZSTD,
}
_NOT_DISTRIBUTED = frozenset(
    {DOCKER_FOREIGN_LAYER_GZIP, OCI_LAYER_NONDIST, OCI_LAYER_NONDIST_GZIP, OCI_LAYER_NONDIST_ZSTD}
)


def layer_compression(media_type: str) -> Compression:
    """How a layer of `media_type` is compressed; foreign and unknown layers are refused."""
    found = _LAYER_COMPRESSION.get(media_type)
    if found is not None:
        return found
    if media_type in _NOT_DISTRIBUTED:
        raise ManifestError(
            f"layer media type {media_type} is foreign/non-distributable "
            "(e.g. a Windows base layer not served by the registry); such images are not supported"
        )
    raise ManifestError(f"unsupported layer media type {media_type!r}")


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True, slots=True)
class ImageManifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes
    digest: Digest


@dataclass(frozen=True, slots=True)
class ImageIndex:
    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes
    digest: Digest


@dataclass(frozen=True, slots=True)
class ImageConfig:
    raw: bytes
    digest: Digest
    diff_ids: tuple[Digest, ...]
    env: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    working_dir: str
    user: str
    os: str
    architecture: str
    variant: str = ""

    @property
    def platform(self) -> Platform:
        return normalize_platform(self.os, self.architecture, self.variant)


def parse_manifest(raw: bytes, content_type: str | None) -> ImageManifest | ImageIndex:
    """Validate `raw` (a manifest or index as received) and return its model."""
    declared = _bare_type(content_type)
    if declared in SCHEMA1_TYPES:
        raise _schema1_error()
    data = decode_json(raw, MAX_MANIFEST_BYTES, "manifest")
    media_type = _manifest_kind(data, declared)
    digest = Digest.of(raw)
    if media_type in INDEX_TYPES:
        entries = require_list(data, "manifests", "index")
        if len(entries) > MAX_INDEX_ENTRIES:
            raise ManifestError(f"index lists {len(entries)} manifests (limit {MAX_INDEX_ENTRIES})")
        manifests = tuple(
            _descriptor(item, f"index manifests[{i}]") for i, item in enumerate(entries)
        )
        return ImageIndex(media_type, manifests, raw, digest)
    config = _descriptor(require_object(data, "config", "manifest"), "manifest config")
    entries = require_list(data, "layers", "manifest")
    if len(entries) > MAX_LAYERS:
        raise ManifestError(f"manifest lists {len(entries)} layers (limit {MAX_LAYERS})")
    layers = tuple(_descriptor(item, f"manifest layers[{i}]") for i, item in enumerate(entries))
    return ImageManifest(media_type, config, layers, raw, digest)


def _bare_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _schema1_error() -> ManifestError:
    return ManifestError(
        "the registry serves a Docker schema 1 manifest, which is deprecated and not supported",
        hint="rebuild and push the image with a current tool (schema 2 or OCI)",
    )


def _manifest_kind(data: dict[str, Any], declared: str) -> str:
    """The media type from the body and the Content-Type, refusing any disagreement."""
    version = data.get("schemaVersion")
    if version == 1 and not isinstance(version, bool):
        raise _schema1_error()
    if version != 2 or isinstance(version, bool):
        raise ManifestError(f"manifest schemaVersion must be 2, got {version!r}")
    field = get_str(data, "mediaType", "manifest")
    if field and declared not in _GENERIC_TYPES and field != declared:
        raise ManifestError(
            f"manifest mediaType {field!r} contradicts the Content-Type {declared!r}"
        )
    media_type = field or (declared if declared not in _GENERIC_TYPES else _infer_kind(data))
    if "manifests" in data and "layers" in data:
        raise ManifestError("ambiguous manifest: it has both 'manifests' and 'layers'")
    if media_type in SCHEMA1_TYPES:
        raise _schema1_error()
    if media_type not in INDEX_TYPES and media_type not in MANIFEST_TYPES:
        raise ManifestError(f"unsupported manifest media type {media_type!r}")
    return media_type


def _infer_kind(data: dict[str, Any]) -> str:
    if "manifests" in data:
        return OCI_INDEX
    if "config" in data or "layers" in data:
        return OCI_MANIFEST
    raise ManifestError("manifest has no mediaType and neither 'manifests' nor 'layers'")


def _descriptor(data: Any, where: str) -> Descriptor:
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    media_type = get_str(data, "mediaType", where, required=True)
    digest = parse_digest(get_str(data, "digest", where, required=True), where)
    size = get_int(data, "size", where, required=True)
    if size < 0 or size > MAX_BLOB_SIZE:
        raise ManifestError(f"{where}: size {size} is out of range (0 to {MAX_BLOB_SIZE})")
    platform_data = get_object(data, "platform", where)
    platform = _platform(platform_data, f"{where} platform") if platform_data is not None else None
    urls = tuple(get_str_list(data, "urls", where) or ())
    annotations = tuple(sorted((get_str_map(data, "annotations", where) or {}).items()))
    return Descriptor(media_type, digest, size, platform, urls, annotations)


def _platform(data: dict[str, Any], where: str) -> Platform:
    os_name = get_str(data, "os", where, required=True)
    architecture = get_str(data, "architecture", where, required=True)
    platform = normalize_platform(os_name, architecture, get_str(data, "variant", where))
    _check_platform(platform, where, required=True)
    return platform


def _check_platform(platform: Platform, where: str, *, required: bool) -> None:
    """Refuse names that are no platform (`../..`, `a/b`); only a variant may be empty,
    and in a config (where ducc never takes a directory name from) any field."""
    for field in ("os", "architecture", "variant"):
        value = getattr(platform, field)
        if not value and (field == "variant" or not required):
            continue
        problem = name_problem(field, value)
        if problem:
            raise ManifestError(f"{where}: {problem}")


def parse_config(raw: bytes, digest: Digest) -> ImageConfig:
    """Validate an image config blob (already fetched by `digest`) and return its model."""
    actual = Digest.of(raw, digest.algorithm)
    if actual != digest:
        raise ManifestError(f"image config: digest mismatch: expected {digest}, got {actual}")
    data = decode_json(raw, MAX_CONFIG_BYTES, "image config")
    rootfs = require_object(data, "rootfs", "image config")
    if rootfs.get("type") != "layers":
        raise ManifestError(
            f"image config rootfs.type must be 'layers', got {rootfs.get('type')!r}"
        )
    ids = get_str_list(rootfs, "diff_ids", "image config rootfs", required=True) or []
    diff_ids = tuple(
        parse_digest(text, f"image config rootfs.diff_ids[{i}]") for i, text in enumerate(ids)
    )
    run = get_object(data, "config", "image config") or {}
    where = "image config config"
    entrypoint = get_str_list(run, "Entrypoint", where)
    cmd = get_str_list(run, "Cmd", where)
    config = ImageConfig(
        raw=raw,
        digest=digest,
        diff_ids=diff_ids,
        env=tuple(get_str_list(run, "Env", where) or ()),
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        cmd=tuple(cmd) if cmd is not None else None,
        working_dir=get_str(run, "WorkingDir", where),
        user=get_str(run, "User", where),
        os=get_str(data, "os", "image config", required=True),
        architecture=get_str(data, "architecture", "image config", required=True),
        variant=get_str(data, "variant", "image config"),
    )
    _check_platform(config.platform, "image config", required=False)
    return config


def check_config_descriptor(manifest: ImageManifest) -> None:
    """The manifest describes a container image: a Helm chart or another OCI artifact has
    a config of its own media type (image-spec manifest.md "config")."""
    if manifest.config.media_type not in CONFIG_TYPES:
        raise ManifestError(
            f"not a container image: config media type is {manifest.config.media_type!r}"
        )


def check_config_matches(manifest: ImageManifest, config: ImageConfig) -> None:
    """The config is the manifest's, and names one diff_id per layer (image-spec config.md)."""
    if config.digest != manifest.config.digest:
        raise ManifestError(
            f"config {config.digest} is not the manifest's config {manifest.config.digest}"
        )
    check_config_descriptor(manifest)
    if len(manifest.layers) != len(config.diff_ids):
        raise ManifestError(
            f"manifest {manifest.digest} lists {len(manifest.layers)} layers but its config "
            f"names {len(config.diff_ids)} diff_ids"
        )
