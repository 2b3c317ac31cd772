"""Hostile or broken manifests, indexes and configs: each image fails alone, clearly.

Every case is an image in one recipe, converted by one `ducc convert` run together with
good images that must still be published. What Debian's docker-registry accepts is pushed
there; what it refuses (schema 1, bodies that are not JSON, wrong Content-Type, lying
digests, bodies beyond ducc's size caps) is served by `StaticRegistry` on another port.
Each case asserts its failure names the image and the problem, that nothing of it was
published, that ducc neither crashed nor hung, and that memory stayed bounded. The same
recipe then goes through the fake `cvmfs_server`, and a few cases through
`ducc download-manifest`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ducc.oci.digest import Digest
from ducc.repository.layout import Layout
from tests.fakes.fixture import FakeCvmfs
from tests.support.ducc import Run, ducc, write_recipe
from tests.support.images import (
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Layer,
    Pusher,
    directory,
    file,
    make_image,
    make_layer,
    sha256,
)
from tests.support.registry import LocalRegistry
from tests.support.static_registry import StaticRegistry

pytestmark = pytest.mark.integration

TAG = "t"
MIB = 1 << 20
MAX_MANIFEST = 4 * MIB  # ducc.oci.MAX_MANIFEST_BYTES
MAX_CONFIG = 16 * MIB  # ducc.oci.MAX_CONFIG_BYTES
RSS_BOUND_KIB = 128 * 1024  # half the 256 MiB bodies the static registry streams
GNU_TIME = "/usr/bin/time"
FOREIGN = "/foreign/layer.tar.gz"
AMD64 = {"os": "linux", "architecture": "amd64"}
ESCAPE = "../../../escaped"


def dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


@dataclass
class Docs:
    """A valid one-platform image as JSON documents, for a case to break."""

    layers: list[Layer]
    config: dict[str, Any]
    manifest: dict[str, Any]

    @property
    def layer(self) -> dict[str, Any]:
        first: dict[str, Any] = self.manifest["layers"][0]
        return first


def docs(name: str, count: int = 1) -> Docs:
    """Layers no other case has, so that a layer published by mistake is noticed."""
    layers = [
        make_layer([directory("etc"), file(f"etc/{name}-{i}", f"{name} {i}\n")])
        for i in range(count)
    ]
    image = make_image(layers, cmd=["/bin/true"])
    return Docs(layers, json.loads(image.config), json.loads(image.manifest))


class Store:
    """Where a case puts its image: the real registry (`pusher`) or the static one."""

    def __init__(self, repository: str, pusher: Pusher | None, static: StaticRegistry) -> None:
        self.repository = repository
        self.pusher = pusher
        self.static = static

    def blob(self, data: bytes) -> str:
        if self.pusher is not None:
            return self.pusher.blob(self.repository, data)
        return self.static.blob(self.repository, data)

    def manifest(self, reference: str, raw: bytes, media_type: str = OCI_MANIFEST) -> str:
        if self.pusher is not None:
            self.pusher.manifest(self.repository, reference, raw, media_type)
        else:
            self.static.manifest(self.repository, reference, raw, media_type)
        return sha256(raw)

    def image(
        self,
        d: Docs,
        *,
        config: bytes | None = None,
        reference: str = TAG,
        media_type: str = OCI_MANIFEST,
    ) -> bytes:
        """Push layers, config and manifest; `config` replaces the config bytes (and the
        manifest's config descriptor follows). The manifest bytes."""
        for layer in d.layers:
            self.blob(layer.blob)
        raw_config = config if config is not None else dump(d.config)
        self.blob(raw_config)
        if config is not None:
            d.manifest["config"].update(digest=sha256(raw_config), size=len(raw_config))
        raw = dump(d.manifest)
        self.manifest(reference, raw, media_type)
        return raw

    def index(self, entries: list[dict[str, Any]], media_type: str = OCI_INDEX) -> None:
        doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
        self.manifest(TAG, dump(doc), media_type)


def entry(raw: bytes, platform: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """An index entry for the manifest `raw`."""
    found: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": sha256(raw), "size": len(raw)}
    if platform is not None:
        found["platform"] = platform
    return found | extra


# --- the catalogue --------------------------------------------------------------------------


# Puts the case's image into a store (its repository is named after the case); returns the
# reference's suffix, ":t" when None.
Build = Callable[[Store, str], str | None]


@dataclass(frozen=True)
class Case:
    """A hostile image and a fragment of the error ducc must fail it with."""

    name: str
    category: str
    expect: str
    build: Build
    static: bool = False  # served by the static registry (docker-registry refuses it)


CASES: dict[str, Case] = {}


def case(category: str, expect: str, *, static: bool = False) -> Callable[[Build], Build]:
    def register(build: Build) -> Build:
        name = build.__name__.replace("_", "-")
        CASES[name] = Case(name, category, expect, build, static)
        return build

    return register


# media types


@case("media type", "not a container image: config media type")
def helm_chart_config(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    s.image(d, config=dump({"name": "chart", "version": "1.0.0"}))


@case("media type", "unsupported layer media type")
def layer_bzip2(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar+bzip2"
    s.image(d)


@case("media type", "foreign/non-distributable")
def layer_foreign_docker(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    d.layer["urls"] = [s.static.url + FOREIGN]  # where the static registry counts requests
    s.image(d)


@case("media type", "foreign/non-distributable")
def layer_nondistributable_oci(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    s.image(d)


@case("media type", "unsupported manifest media type", static=True)
def manifest_media_type_unknown(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["mediaType"] = "application/vnd.example.thing.v1+json"
    s.image(d, media_type="application/vnd.example.thing.v1+json")


@case("media type", "contradicts the Content-Type", static=True)
def content_type_contradicts_body(s: Store, name: str) -> None:
    s.image(docs(name), media_type=DOCKER_MANIFEST)


@case("media type", "required field 'manifests' is missing", static=True)
def manifest_served_as_index(s: Store, name: str) -> None:
    d = docs(name)
    del d.manifest["mediaType"]
    s.image(d, media_type=OCI_INDEX)


@case("media type", "Docker schema 1", static=True)
def schema1_signed(s: Store, name: str) -> None:
    body = {"schemaVersion": 1, "name": name, "tag": TAG, "fsLayers": [], "history": []}
    s.manifest(TAG, dump(body), "application/vnd.docker.distribution.manifest.v1+prettyjws")


@case("media type", "Docker schema 1", static=True)
def schema1_generic_content_type(s: Store, name: str) -> None:
    body = {"schemaVersion": 1, "name": name, "tag": TAG, "fsLayers": [], "history": []}
    s.manifest(TAG, dump(body), "application/json")


@case("media type", "schemaVersion must be 2, got 3", static=True)
def schema_version_3(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["schemaVersion"] = 3
    s.image(d)


# digests


@case("digest", "digest mismatch", static=True)
def pinned_digest_other_bytes(s: Store, name: str) -> str:
    wanted = s.image(docs(name))
    served = s.image(docs(name + "-other"), reference=sha256(wanted))
    assert served != wanted
    return "@" + sha256(wanted)


@case("digest", "Docker-Content-Digest", static=True)
def docker_content_digest_lies(s: Store, name: str) -> None:
    """Honest by tag (the HEAD), lying by digest (the GET that follows)."""
    raw = s.image(docs(name))
    s.static.manifest(s.repository, sha256(raw), raw, OCI_MANIFEST, digest=sha256(b"other"))


@case("digest", "digest mismatch", static=True)
def config_blob_other_bytes(s: Store, name: str) -> None:
    d = docs(name)
    s.image(d)
    config = dump(d.config)
    s.static.blob(s.repository, config, served=config.replace(b"amd64", b"arm64"))


@case("digest", "digest mismatch", static=True)
def layer_blob_other_bytes(s: Store, name: str) -> None:
    d = docs(name)
    s.image(d)
    blob = d.layers[0].blob
    s.static.blob(s.repository, blob, served=blob[:-1] + bytes([blob[-1] ^ 0xFF]))


@case("digest", "hex part must be lowercase hexadecimal", static=True)
def layer_digest_uppercase(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["digest"] = d.layer["digest"].upper().replace("SHA256", "sha256")
    s.image(d)


@case("digest", "unsupported algorithm 'md5'", static=True)
def layer_digest_md5(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["digest"] = "md5:" + "0" * 32
    s.image(d)


@case("digest", "digest mismatch", static=True)
def index_entry_cycles_to_itself(s: Store, name: str) -> None:
    """The entry's digest is served the index itself: following it would loop."""
    child = dump(docs(name).manifest)
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(child, AMD64)]}
    raw = dump(doc)
    s.manifest(TAG, raw, OCI_INDEX)
    s.manifest(sha256(child), raw, OCI_INDEX)


@case("digest", "Exceeded 30 redirects", static=True)
def manifest_redirects_to_itself(s: Store, name: str) -> None:
    path = f"/v2/{s.repository}/manifests/{TAG}"
    s.static.redirect(path, path)


@case("digest", "Exceeded 30 redirects", static=True)
def config_redirect_loop(s: Store, name: str) -> None:
    d = docs(name)
    s.image(d)
    first, second = (f"/v2/{s.repository}/blobs/{sha256(dump(d.config))}", "/elsewhere")
    s.static.redirect(first, second)
    s.static.redirect(second, first)


# diff_ids


@case("diff_id", "diff_id: digest mismatch")
def diff_id_wrong(s: Store, name: str) -> None:
    d = docs(name)
    d.config["rootfs"]["diff_ids"] = [sha256(b"not the layer")]
    s.image(d, config=dump(d.config))


@case("diff_id", "diff_id: digest mismatch")
def diff_ids_swapped(s: Store, name: str) -> None:
    d = docs(name, 2)
    d.config["rootfs"]["diff_ids"].reverse()
    s.image(d, config=dump(d.config))


@case("diff_id", "diff_id: digest mismatch")
def diff_id_is_the_blob_digest(s: Store, name: str) -> None:
    d = docs(name)
    d.config["rootfs"]["diff_ids"] = [d.layers[0].digest]  # compressed, not the tar
    s.image(d, config=dump(d.config))


@case("diff_id", "lists 1 layers but its config names 2 diff_ids")
def diff_ids_more_than_layers(s: Store, name: str) -> None:
    d = docs(name)
    d.config["rootfs"]["diff_ids"].append(sha256(b"extra"))
    s.image(d, config=dump(d.config))


@case("diff_id", "lists 2 layers but its config names 1 diff_ids")
def diff_ids_fewer_than_layers(s: Store, name: str) -> None:
    d = docs(name, 2)
    d.config["rootfs"]["diff_ids"].pop()
    s.image(d, config=dump(d.config))


@case("diff_id", "rootfs.diff_ids[0]: digest 'layer-one' has no algorithm")
def diff_id_not_a_digest(s: Store, name: str) -> None:
    d = docs(name)
    d.config["rootfs"]["diff_ids"] = ["layer-one"]
    s.image(d, config=dump(d.config))


@case("digest", "sha512 digests are not supported", static=True)
def config_named_by_sha512(s: Store, name: str) -> None:
    """A valid OCI digest, but the layout names products by sha256 hex (once this image
    failed in the podman store, after its public link was made)."""
    d = docs(name)
    s.image(d)
    config = dump(d.config)
    d.manifest["config"]["digest"] = s.static.blob(s.repository, config, algorithm="sha512")
    s.manifest(TAG, dump(d.manifest))


@case("digest", "sha512 digests are not supported")
def diff_id_sha512(s: Store, name: str) -> None:
    d = docs(name)
    d.config["rootfs"]["diff_ids"] = ["sha512:" + hashlib.sha512(d.layers[0].tar).hexdigest()]
    s.image(d, config=dump(d.config))


# sizes


@case("size", "size mismatch")
def layer_size_absurd(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["size"] = 1 << 39  # 512 GiB announced for a few hundred bytes
    s.image(d)


@case("size", "is out of range")
def layer_size_beyond_one_tib(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["size"] = 1 << 50
    s.image(d)


@case("size", "is out of range")
def layer_size_negative(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["size"] = -1
    s.image(d)


@case("size", "size mismatch")
def layer_size_short(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["size"] -= 1
    s.image(d)


@case("size", f"more than the {MAX_CONFIG} allowed")
def config_size_absurd(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["config"]["size"] = 1 << 30
    s.image(d)


@case("size", "size mismatch")
def config_size_short(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["config"]["size"] -= 10
    s.image(d)


@case("size", "'size' must be an integer, got float", static=True)
def layer_size_float(s: Store, name: str) -> None:
    d = docs(name)
    d.layer["size"] = float(d.layer["size"]) + 0.5
    s.image(d)


@case("size", "is not valid JSON", static=True)
def layer_size_5000_digits(s: Store, name: str) -> None:
    d = docs(name)
    raw = dump(d.manifest).replace(f'"size": {d.layer["size"]}'.encode(), b'"size": ' + b"9" * 5000)
    s.manifest(TAG, raw)


@case("size", f"exceeds {MAX_MANIFEST}", static=True)
def manifest_256mib_announced(s: Store, name: str) -> None:
    s.static.manifest(s.repository, TAG, b" " * MIB, OCI_MANIFEST, repeat=256)


@case("size", f"exceeds {MAX_MANIFEST}", static=True)
def manifest_256mib_unannounced(s: Store, name: str) -> None:
    s.static.manifest(s.repository, TAG, b" " * MIB, OCI_MANIFEST, repeat=256, length=False)


@case("size", f"exceeds {MAX_MANIFEST}", static=True)
def manifest_gzip_bomb(s: Store, name: str) -> None:
    """1 MiB on the wire, 1 GiB once decoded (`Content-Encoding: gzip`, 1,024 members)."""
    member = gzip.compress(b" " * MIB, mtime=0)
    gzip_encoded = {"Content-Encoding": "gzip"}
    s.static.manifest(s.repository, TAG, member, OCI_MANIFEST, repeat=1024, extra=gzip_encoded)


@case("size", f"more than the {MAX_CONFIG} allowed", static=True)
def config_17mib(s: Store, name: str) -> None:
    d = docs(name)
    d.config["history"] = [{"comment": "x" * MIB} for _ in range(17)]
    s.image(d, config=dump(d.config))


@case("size", "size mismatch", static=True)
def config_256mib_behind_a_small_size(s: Store, name: str) -> None:
    d = docs(name)
    s.image(d)
    config = dump(d.config)
    s.static.blob(s.repository, config, served=b"{" * MIB, repeat=256, length=False)


@case("size", "limit 1024")
def layers_1025(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["layers"] *= 1025
    d.config["rootfs"]["diff_ids"] *= 1025
    s.image(d, config=dump(d.config))


@case("size", "limit 1024")
def index_1025_entries(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference=sha256(dump(docs(name).manifest)))
    s.index([entry(raw, AMD64)] * 1025)


@case("size", "nests JSON deeper than 32 levels")
def config_nested_10000_deep(s: Store, name: str) -> None:
    d = docs(name)
    d.config["config"]["Labels"] = {}
    raw = dump(d.config).replace(b'"Labels": {}', b'"Labels": ' + b"[" * 10000 + b"]" * 10000)
    s.image(d, config=raw)


@case("size", "nests JSON deeper than 32 levels", static=True)
def manifest_nested_40_deep(s: Store, name: str) -> None:
    d = docs(name)
    nested: Any = "x"
    for _ in range(40):
        nested = {"a": nested}
    d.manifest["annotations"] = {"deep": nested}
    s.image(d)


# missing or wrong fields, bodies that are not JSON objects


@case("JSON", "is not valid JSON", static=True)
def manifest_html(s: Store, name: str) -> None:
    s.manifest(TAG, b"<html><body>502 Bad Gateway</body></html>", "text/html")


@case("JSON", "is not valid JSON", static=True)
def manifest_empty_body(s: Store, name: str) -> None:
    s.manifest(TAG, b"", OCI_MANIFEST)


@case("JSON", "must be a JSON object, got list", static=True)
def manifest_json_array(s: Store, name: str) -> None:
    s.manifest(TAG, dump([docs(name).manifest]), OCI_MANIFEST)


@case("JSON", "is not UTF-8 text", static=True)
def manifest_latin1(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["annotations"] = {"org.opencontainers.image.title": "caf\u00e9"}
    s.manifest(TAG, json.dumps(d.manifest, ensure_ascii=False).encode("latin-1"))


@case("JSON", "duplicate key 'layers'")
def manifest_duplicate_layers_key(s: Store, name: str) -> None:
    """Two parsers picking different duplicates would see different images."""
    d = docs(name)
    s.image(d)
    other = docs(name + "-hidden")
    s.blob(other.layers[0].blob)
    raw = dump(d.manifest)[:-1] + b', "layers": ' + dump(other.manifest["layers"]) + b"}"
    s.manifest(TAG, raw)


@case("JSON", "Unexpected UTF-8 BOM", static=True)
def manifest_with_a_byte_order_mark(s: Store, name: str) -> None:
    s.manifest(TAG, b"\xef\xbb\xbf" + dump(docs(name).manifest))


@case("JSON", "NaN is not JSON", static=True)
def manifest_with_nan(s: Store, name: str) -> None:
    """Python reads NaN; the registry's Go parser, like RFC 8259, does not."""
    d = docs(name)
    d.manifest["annotations"] = {"x": "NAN"}
    s.manifest(TAG, dump(d.manifest).replace(b'{"x": "NAN"}', b'{"x": NaN}'))


@case("JSON", "required field 'layers' is missing")
def manifest_without_layers(s: Store, name: str) -> None:
    d = docs(name)
    del d.manifest["layers"]
    s.image(d)


@case("JSON", "required field 'config' is missing", static=True)
def manifest_without_config(s: Store, name: str) -> None:
    d = docs(name)
    del d.manifest["config"]
    s.image(d)


@case("JSON", "required field 'digest' is missing", static=True)
def layer_without_digest(s: Store, name: str) -> None:
    d = docs(name)
    del d.layer["digest"]
    s.image(d)


@case("JSON", "'layers' must be a list, got dict", static=True)
def layers_an_object(s: Store, name: str) -> None:
    d = docs(name)
    d.manifest["layers"] = {"0": d.layer}
    s.image(d)


@case("JSON", "both 'manifests' and 'layers'", static=True)
def manifest_and_index_at_once(s: Store, name: str) -> None:
    d = docs(name)
    del d.manifest["mediaType"]
    d.manifest["manifests"] = []
    s.image(d, media_type="application/json")


@case("config", "image config is not valid JSON")
def config_a_dockerfile(s: Store, name: str) -> None:
    s.image(docs(name), config=b"FROM debian:12\nRUN true\n")


@case("config", "image config is not UTF-8 text")
def config_gzipped(s: Store, name: str) -> None:
    d = docs(name)
    s.image(d, config=gzip.compress(dump(d.config), mtime=0))


@case("config", "image config must be a JSON object, got list")
def config_json_array(s: Store, name: str) -> None:
    d = docs(name)
    s.image(d, config=dump([d.config]))


@case("config", "required field 'rootfs' is missing")
def config_without_rootfs(s: Store, name: str) -> None:
    d = docs(name)
    del d.config["rootfs"]
    s.image(d, config=dump(d.config))


@case("config", "rootfs.type must be 'layers'")
def config_rootfs_type(s: Store, name: str) -> None:
    d = docs(name)
    d.config["rootfs"]["type"] = "squashfs"
    s.image(d, config=dump(d.config))


@case("config", "required field 'os' is missing")
def config_without_os(s: Store, name: str) -> None:
    d = docs(name)
    del d.config["os"]
    s.image(d, config=dump(d.config))


@case("config", "'Entrypoint' must be a list of strings")
def config_entrypoint_string(s: Store, name: str) -> None:
    d = docs(name)
    d.config["config"]["Entrypoint"] = "/bin/sh -c 'rm -rf /'"
    s.image(d, config=dump(d.config))


@case("config", "image config Entrypoint: an argument is not valid UTF-8")
def config_entrypoint_lone_surrogate(s: Store, name: str) -> None:
    """`\\ud800` is valid JSON but no Unicode text: it cannot be written to a runscript."""
    d = docs(name)
    d.config["config"]["Entrypoint"] = ["/bin/sh", "\ud800"]
    s.image(d, config=dump(d.config))


@case("config", "duplicate key 'rootfs'")
def config_duplicate_rootfs(s: Store, name: str) -> None:
    d = docs(name)
    raw = dump(d.config)[:-1] + b', "rootfs": {"type": "layers", "diff_ids": []}}'
    s.image(d, config=raw)


# indexes and platforms


@case("index", "is itself an index")
def index_entry_is_an_index(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference="inner-manifest")
    inner = dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(raw, AMD64)]})
    s.manifest("inner", inner, OCI_INDEX)
    s.index([entry(inner, AMD64)])  # claims a manifest, is an index


@case("index", "the index has no manifest for linux/amd64 (it has: none)")
def index_of_an_index(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference="inner-manifest")
    inner = dump({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry(raw, AMD64)]})
    s.manifest("inner", inner, OCI_INDEX)
    s.index([entry(inner, AMD64, mediaType=OCI_INDEX)])


@case("index", "the index has no manifest for linux/amd64 (it has: none)")
def index_only_unknown_platforms(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference="attestation")
    unknown = {"os": "unknown", "architecture": "unknown"}
    s.index([entry(raw, unknown), entry(raw)])


@case("index", "(it has: linux/arm64, linux/s390x)")
def index_platform_absent(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference="arm")
    arm = {"os": "linux", "architecture": "aarch64"}
    s.index([entry(raw, arm), entry(raw, {"os": "linux", "architecture": "s390x"})])


@case("index", "MANIFEST_UNKNOWN", static=True)
def index_entry_names_a_config_blob(s: Store, name: str) -> None:
    """docker-registry stores this index, then answers HTTP 500 for the entry (a fault ducc
    retries for 15 s); a registry that says 404 MANIFEST_UNKNOWN is served here instead."""
    d = docs(name)
    s.image(d, reference="manifest")
    config = dump(d.config)
    s.index([entry(config, AMD64)])


@case("index", "size mismatch")
def index_entry_size_wrong(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference="manifest")
    s.index([entry(raw, AMD64, size=len(raw) + 100)])


@case("index", "architecture '../../../escaped' is not a platform name")
def index_platform_path_traversal(s: Store, name: str) -> None:
    """With --multi-arch each platform names a directory `.multiarch/<architecture>`."""
    raw = s.image(docs(name), reference="manifest")
    s.index([entry(raw, AMD64), entry(raw, {"os": "linux", "architecture": ESCAPE})])


@case("config", "architecture 'amd64/../../escaped' is not a platform name")
def config_platform_path_traversal(s: Store, name: str) -> None:
    d = docs(name)
    d.config["architecture"] = "amd64/../../escaped"
    s.image(d, config=dump(d.config))


@case("index", "is listed for linux/amd64, but its config")
def index_entry_config_for_another_architecture(s: Store, name: str) -> None:
    """An arm64 build listed as amd64: worker nodes would get binaries they cannot run."""
    d = docs(name)
    d.config["architecture"] = "arm64"
    raw = s.image(d, config=dump(d.config), reference="manifest")
    s.index([entry(raw, AMD64)])


@case("index", "'platform' must be an object, got str", static=True)
def index_platform_a_string(s: Store, name: str) -> None:
    raw = s.image(docs(name), reference="manifest")
    s.index([entry(raw) | {"platform": "linux/amd64"}])


# --- running them ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """The one `ducc convert` run over every case (the static registry serves on meanwhile)."""

    run: Run
    refs: dict[str, str]  # case name -> image reference
    good: dict[str, list[str]]  # image -> files its flat tree must hold
    root: Path
    hits: Counter[str]  # the static registry's requests during the convert run
    peak_rss_kib: int
    errors_logged: dict[str, str]  # image -> error, from the log events of failures

    def result(self, name: str) -> dict[str, Any]:
        ref = self.refs[name]
        (found,) = [r for r in self.run.json()["images"] if r["image"] == ref]
        return dict(found)


def measured_ducc(*args: str | os.PathLike[str], rss_file: Path, timeout: float) -> tuple[Run, int]:
    """`ducc ARGS...` like `tests.support.ducc.ducc`, plus its peak RSS in KiB from GNU time
    (the kernel counts a child's RSS from before its exec: this process's, not ducc's).
    The whole process group is killed after `timeout` seconds: a hang fails, never stalls."""
    command = [GNU_TIME, "-f", "%M", "-o", str(rss_file), sys.executable, "-m", "ducc"]
    with subprocess.Popen(
        [*command, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
    rss = int(rss_file.read_text().split()[-1])
    return Run(process.returncode, stdout, stderr), rss


def failed_events(stderr: str) -> dict[str, str]:
    found = {}
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        # A failure while polling (HEAD) is `poll_failed`; any later one `image_failed`.
        if isinstance(event, dict) and event.get("event") in ("image_failed", "poll_failed"):
            found[str(event["image"])] = str(event["error"])
    return found


@pytest.fixture(scope="module")
def hostile(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcome]:
    if not Path(GNU_TIME).is_file():
        pytest.skip("GNU time is not installed (scripts/setup installs it)")
    tmp = tmp_path_factory.mktemp("hostile")
    with StaticRegistry() as static:
        refs = {}
        for item in CASES.values():
            repository = f"hostile/{item.name}"
            store = Store(repository, None if item.static else registry.pusher(), static)
            suffix = item.build(store, item.name) or f":{TAG}"
            base = static.url if item.static else registry.url
            refs[item.name] = f"{base}/{repository}{suffix}"
        good = push_good_images(registry, static)
        recipe = write_recipe(tmp / "recipe.yaml", "hostile.test", [*refs.values(), *good])
        root = tmp / "repo"
        started = time.monotonic()
        run, rss = measured_ducc(
            "--log-format", "json", "convert", recipe, "--json", "--publisher", "dir",
            "--root", root, "--state-dir", tmp / "state", "--downloads-dir", tmp / "downloads",
            rss_file=tmp / "rss", timeout=120,
        )  # fmt: skip
        seconds = time.monotonic() - started
        hits = Counter(static.hits)
        print(f"{len(CASES)} hostile cases, {len(good)} good images: {seconds:.1f} s, {rss} KiB")
        yield Outcome(run, refs, good, root, hits, rss, failed_events(run.stderr))


def push_good_images(registry: LocalRegistry, static: StaticRegistry) -> dict[str, list[str]]:
    """Images that must convert beside the hostile ones: a plain one, one that lists a blob
    twice (valid, if odd: each layer is ingested once), one created in year 1 at +14:00
    (once a crash of the whole run). Reference -> expected files."""
    pusher = registry.pusher()
    plain = docs("good")
    pusher.image("hostile/good", TAG, make_image(plain.layers))
    twice = docs("good-twice", 2)
    pusher.image("hostile/good-twice", TAG, make_image([*twice.layers, twice.layers[0]]))
    year1 = docs("good-year-1")
    year1.config["created"] = "0001-01-01T00:00:00+14:00"  # ISO 8601, but no UTC time
    Store("hostile/good-year-1", pusher, static).image(year1, config=dump(year1.config))
    return {
        f"{registry.url}/hostile/good:{TAG}": ["etc/good-0"],
        f"{registry.url}/hostile/good-twice:{TAG}": ["etc/good-twice-0", "etc/good-twice-1"],
        f"{registry.url}/hostile/good-year-1:{TAG}": ["etc/good-year-1-0"],
    }


def test_the_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.category for c in CASES.values()}) >= 6


def test_the_run_fails_without_crashing_and_converts_the_good_images(hostile: Outcome) -> None:
    run = hostile.run
    assert run.code == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    assert "unexpected" not in run.stderr
    totals = run.json()["totals"]
    assert totals["failed"] == len(CASES)
    assert totals["added"] == len(hostile.good)
    for image, files in hostile.good.items():
        assert run.outcomes()[image] == "added"
        public = hostile.root / image.removeprefix("http://")
        for path in files:  # `docs` wrote "<name> <i>" into etc/<name>-<i>
            name, _, i = Path(path).name.rpartition("-")
            assert (public / path).read_text() == f"{name} {i}\n"
    assert run.json()["ingests"] == 4, "a blob listed twice is ingested once; no hostile layer"
    checked = ducc("verify", hostile.root)
    assert checked.code == 0, checked.stdout + checked.stderr


def test_memory_stays_bounded(hostile: Outcome) -> None:
    """The static registry streams 256 MiB bodies; ducc reads no more than its caps."""
    assert hostile.peak_rss_kib < RSS_BOUND_KIB


def test_requests_stay_few_and_refused_blobs_are_never_fetched(hostile: Outcome) -> None:
    hits = hostile.hits
    blobs = [k for k in hits if "/hostile/config-17mib/blobs/" in k]
    assert blobs == [], "a config over the cap is refused by its declared size"
    assert hits[f"GET {FOREIGN}"] == 0, "a foreign layer's URL is never fetched"
    looping = {k: n for k, n in hits.items() if "redirect" in k or "/elsewhere" in k}
    assert max(looping.values()) <= 31, "requests' bound on redirects"
    assert max(n for k, n in hits.items() if k not in looping) <= 2, hits.most_common(3)


@pytest.mark.parametrize("name", list(CASES))
def test_case_fails_alone_with_a_clear_error(hostile: Outcome, name: str) -> None:
    item = CASES[name]
    result = hostile.result(name)
    assert result["outcome"] == "failed"
    assert item.expect in result["error"]
    assert hostile.errors_logged.get(hostile.refs[name]) == result["error"]
    repository = f"hostile/{name}"
    leaked = [str(p) for p in hostile.root.rglob("*") if repository in str(p)]
    assert leaked == [], "nothing of a failed image is published"
    layer = Digest.parse(docs(name).layers[0].digest)
    assert not Layout(hostile.root).layer_dir(layer).exists()


DOWNLOAD_CASES = [
    # (case, extra options, exit code, fragment of the error)
    ("schema1-signed", [], 1, "Docker schema 1"),
    ("manifest-256mib-unannounced", [], 1, f"exceeds {MAX_MANIFEST}"),
    ("pinned-digest-other-bytes", [], 1, "digest mismatch"),
    ("manifest-duplicate-layers-key", [], 1, "duplicate key 'layers'"),
    ("helm-chart-config", [], 1, "not a container image"),
    ("config-without-rootfs", [], 1, "required field 'rootfs' is missing"),
    ("index-entry-is-an-index", ["--multi-arch"], 1, "is itself an index"),
    ("index-platform-absent", ["--platform", "linux/arm/v7"], 1, "no manifest for linux/arm/v7"),
    ("index-platform-absent", ["--platform", "linux"], 2, "is not os/architecture[/variant]"),
]


@pytest.mark.parametrize(
    ("name", "options", "code", "expect"),
    DOWNLOAD_CASES,
    ids=[f"{c[0]}{'-' if c[1] else ''}{'-'.join(c[1])}" for c in DOWNLOAD_CASES],
)
def test_download_manifest_refuses_with_a_clear_error(
    hostile: Outcome, name: str, options: list[str], code: int, expect: str
) -> None:
    run = ducc("download-manifest", hostile.refs[name], *options, timeout=60)
    assert run.code == code, run.stderr
    assert run.stdout == ""
    assert "Traceback" not in run.stderr
    error = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(error) == 1, run.stderr
    assert expect in error[0]
    if code == 1:
        assert f"hostile/{name}" in error[0], "the error names the image"


def test_multi_arch_platform_names_never_leave_the_repository(
    hostile: Outcome, tmp_path: Path
) -> None:
    """A platform `../../../escaped` once made `.multiarch/../../../escaped/...` directories."""
    root = tmp_path / "a" / "b" / "repo"
    image = hostile.refs["index-platform-path-traversal"]
    run = ducc(
        "convert-single-image", image, "escape.test", "--multi-arch", "--publisher", "dir",
        "--root", root, "--state-dir", tmp_path / "state", timeout=60,
    )  # fmt: skip
    assert run.code == 1, run.stderr
    assert "is not a platform name" in run.stdout
    assert [str(p) for p in tmp_path.rglob("*escaped*")] == []


def test_on_cvmfs_a_hostile_image_leaves_no_transaction_and_nothing_published(
    hostile: Outcome, fake_cvmfs: FakeCvmfs, tmp_path: Path
) -> None:
    """The same recipe through `cvmfs_server` (the fake, with real mounts): an image whose
    layer proves wrong while it is ingested (a diff_id that does not match) has its ingest
    killed before the tar ends, so nothing of it is published; the good images are; the
    repository verifies."""
    if os.geteuid() != 0:
        pytest.skip("the fake cvmfs_server serves read-only mounts only as root")
    recipe = write_recipe(
        tmp_path / "recipe.yaml", fake_cvmfs.repo, [*hostile.refs.values(), *hostile.good]
    )
    run = ducc(
        "convert", recipe, "--json", "--publisher", "cvmfs", "--cvmfs-prefix", fake_cvmfs.prefix,
        "--state-dir", tmp_path / "state", timeout=120,
    )  # fmt: skip
    assert run.code == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    totals = run.json()["totals"]
    assert (totals["failed"], totals["added"]) == (len(CASES), len(hostile.good))
    assert fake_cvmfs.transactions() == []
    assert fake_cvmfs.count("ingest", ok=True) == 4  # the good images' layers; no hostile one
    root = fake_cvmfs.root
    leaked = [
        str(p) for p in root.rglob("*") if "hostile/" in str(p) and "hostile/good" not in str(p)
    ]
    assert leaked == []
    checked = ducc("verify", root)
    assert checked.code == 0, checked.stdout + checked.stderr
