"""A repository exactly as DUCC (`cvmfs_ducc`) leaves it, built from images the tests push.

Written here from DUCC's formats, not by ducc: records are Go's `json.Marshal` of DUCC's
untagged `Manifest` struct (`SchemaVersion`, `MediaType`, `Config{...}`, `Layers[...]`, the
only file of the record), a tag naming a manifest list is recorded under
`.metadata/.multiarch/<arch>[:<variant>]/<name>/`, chains are named by DUCC's formula over
compressed blob digests, `layers.json` and `origin.json` are indented with Go times, flat trees
carry `.singularity.d` but no `.flat/<xx>/.cvmfscatalog`, and the podman store is either DUCC's
older per-layer kind (`diff` -> `.layers/<xx>/<blob>/layerfs`) or its newer one-layer kind.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.images import Image, Index, Layer

GO_TIME = "2024-05-02T10:11:12.123456789+02:00"
CATALOG = ".cvmfscatalog"


def go_manifest(image: Image) -> bytes:
    """DUCC's record: `json.Marshal(da.Manifest)`, compact, keys in struct order."""
    doc = json.loads(image.manifest)
    config = doc["config"]
    record = {
        "SchemaVersion": doc["schemaVersion"],
        "MediaType": doc.get("mediaType", ""),
        "Config": {
            "MediaType": config["mediaType"],
            "Size": config["size"],
            "Digest": config["digest"],
        },
        "Layers": [
            {"MediaType": x["mediaType"], "Size": x["size"], "Digest": x["digest"]}
            for x in doc["layers"]
        ],
    }
    return json.dumps(record, separators=(",", ":")).encode()


def chain_ids(image: Image) -> list[str]:
    """DUCC's chain names (`Manifest.GetChainIDs`), hex."""
    chains: list[str] = []
    for layer in image.layers:
        text = f"sha256:{chains[-1]} {layer.digest}" if chains else layer.digest
        chains.append(hashlib.sha256(text.encode()).hexdigest())
    return chains


def go_json(value: object) -> bytes:
    """`json.MarshalIndent(value, "", " ")`."""
    return json.dumps(value, indent=1).encode()


def hexof(digest: str) -> str:
    return digest.split(":", 1)[1]


def _extract(tar: bytes, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest, filter="fully_trusted")  # noqa: S202 - archives the tests built


@dataclass
class DuccRepository:
    """The repository root and the registry host its names carry."""

    root: Path
    host: str
    podman_images: list[dict[str, object]] = field(default_factory=list)
    podman_layers: list[dict[str, object]] = field(default_factory=list)

    def name(self, repository: str, tag: str) -> str:
        return f"{self.host}/{repository}:{tag}"

    # --- products -----------------------------------------------------------------------

    def layer(self, layer: Layer, config_digest: str) -> Path:
        """`.layers/<xx>/<blob>/layerfs` and its `.metadata` (DUCC's `StoreLayerInfo` and
        backlinks: `origin.json` appended, duplicates and all)."""
        blob = hexof(layer.digest)
        top = self.root / ".layers"
        directory = top / blob[:2] / blob
        for marker in (top / CATALOG, top / blob[:2] / CATALOG):
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
        if not (directory / "layerfs").is_dir():
            _extract(layer.tar, directory / "layerfs")
            (directory / "layerfs" / CATALOG).touch()
            info = {
                "id": hexof(layer.diff_id),
                "created": GO_TIME,
                "compressed-diff-digest": layer.digest,
                "diff-digest": layer.diff_id,
                "diff-size": len(layer.tar),
            }
            (directory / ".metadata").mkdir()
            (directory / ".metadata" / "layers.json").write_bytes(go_json([info]))
        origin = directory / ".metadata" / "origin.json"
        origins = json.loads(origin.read_bytes())["origin"] if origin.exists() else []
        origin.write_bytes(go_json({"origin": [*origins, config_digest]}))
        return directory

    def flat(self, image: Image) -> Path:
        """`.flat/<xx>/<config>`: the layers applied, Apptainer's scaffolding, a catalog."""
        config = hexof(image.config_digest)
        flat = self.root / ".flat" / config[:2] / config
        (self.root / ".flat").mkdir(parents=True, exist_ok=True)
        (self.root / ".flat" / CATALOG).touch()
        if flat.is_dir():
            return flat
        for layer in image.layers:
            _extract(layer.tar, flat)
        for sub in ("actions", "env", "libs"):
            (flat / ".singularity.d" / sub).mkdir(parents=True, exist_ok=True)
        (flat / ".singularity.d" / "runscript").write_text('#!/bin/sh\nexec /bin/sh "$@"\n')
        (flat / CATALOG).touch()
        return flat

    def chains(self, image: Image) -> list[Path]:
        """DUCC's chains: layers 1..n applied, named by its formula, each a catalog."""
        made = []
        for count, chain in enumerate(chain_ids(image), start=1):
            directory = self.root / ".chains" / chain[:2] / chain
            (self.root / ".chains" / chain[:2]).mkdir(parents=True, exist_ok=True)
            for marker in (self.root / ".chains" / CATALOG, directory.parent / CATALOG):
                marker.touch()
            if not directory.is_dir():
                for layer in image.layers[:count]:
                    _extract(layer.tar, directory)
                (directory / CATALOG).touch()
            made.append(directory)
        return made

    def products(self, image: Image) -> None:
        for layer in image.layers:
            self.layer(layer, image.config_digest)
        self.chains(image)
        self.flat(image)

    # --- records and links ----------------------------------------------------------------

    def record(self, name: str, image: Image, label: str | None = None) -> Path:
        where = self.root / ".metadata" / (f".multiarch/{label}" if label else "") / name
        where.mkdir(parents=True, exist_ok=True)
        (where / "manifest.json").write_bytes(go_manifest(image))
        return where

    def link(self, link: Path, target: Path) -> None:
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(target, link.parent), link)

    def publish(self, repository: str, tag: str, image: Image) -> str:
        """A single-manifest tag as DUCC converts it (layers, chains, flat, record, link)."""
        name = self.name(repository, tag)
        self.products(image)
        self.record(name, image)
        self.link(self.root / name, self.flat(image))
        return name

    def publish_list(self, repository: str, tag: str, index: Index, labels: Sequence[str]) -> str:
        """A tag naming a manifest list, DUCC run without --multi-arch: only the amd64 entry
        (`labels[0]`), recorded under `.metadata/.multiarch/<label>/`, a plain link."""
        name = self.name(repository, tag)
        image = index.images[0]
        self.products(image)
        self.record(name, image, labels[0])
        self.link(self.root / name, self.flat(image))
        return name

    def publish_multi_arch(
        self, repository: str, tag: str, index: Index, labels: Sequence[str]
    ) -> str:
        """A manifest list converted with DUCC's --multi-arch: every entry's products, record
        and `.multiarch/<label>` link under DUCC's raw labels, the CVMFS_ARCH variant link
        and DUCC's alias links."""
        name = self.name(repository, tag)
        for image, label in zip(index.images, labels, strict=True):
            self.products(image)
            self.record(name, image, label)
            self.link(self.root / ".multiarch" / label / name, self.flat(image))
        public = self.root / name
        public.parent.mkdir(parents=True, exist_ok=True)
        up = "../" * (len(Path(name).parts) - 1)
        os.symlink(f"{up}.multiarch/$(CVMFS_ARCH:-amd64)/{name}", public)
        aliases = {"arm64": "arm64:v8", "aarch64": "arm64", "armhf": "arm", "x86_64": "amd64"}
        for alias, target in aliases.items():
            if (self.root / ".multiarch" / target).exists():
                os.symlink(target, self.root / ".multiarch" / alias)
        return name

    # --- podman store --------------------------------------------------------------------

    def podman_per_layer(self, name: str, image: Image) -> None:
        """DUCC's older store: one overlay layer per image layer, `diff` pointing at the
        layer's `layerfs`, `lower` files, a `parent` chain, `manifest` a link to the record."""
        store = self.root / "podmanStore"
        previous: str | None = None
        lowers: list[str] = []
        for number, layer in enumerate(image.layers):
            diff_id, blob = hexof(layer.diff_id), hexof(layer.digest)
            layer_dir = store / "overlay" / diff_id
            layer_dir.mkdir(parents=True, exist_ok=True)
            self.link(layer_dir / "diff", self.root / ".layers" / blob[:2] / blob / "layerfs")
            link_id = f"{number:02d}" + base64.b32encode(bytes.fromhex(diff_id)[:15]).decode()[:24]
            (layer_dir / "link").write_text(link_id)
            self.link(store / "overlay" / "l" / link_id, layer_dir / "diff")
            if lowers:
                (layer_dir / "lower").write_text(":".join(reversed(lowers)))
            lowers.append(f"l/{link_id}")
            entry: dict[str, object] = {"id": diff_id, "created": GO_TIME}
            if previous is not None:
                entry["parent"] = previous
            entry |= {
                "compressed-diff-digest": layer.digest,
                "compressed-size": len(layer.blob),
                "diff-digest": layer.diff_id,
                "diff-size": len(layer.tar),
            }
            self.podman_layers.append(entry)
            previous = diff_id
        image_dir = self._podman_image(name, image, previous or "")
        self.link(image_dir / "manifest", self.root / ".metadata" / name / "manifest.json")

    def podman_flat(self, name: str, image: Image) -> None:
        """DUCC's newer store: one synthetic layer whose `diff` is the flat tree."""
        store = self.root / "podmanStore"
        image_id = hexof(image.config_digest)
        layer_id = hashlib.sha256(f"cvmfs-flat-layer:{image_id}".encode()).hexdigest()
        layer_dir = store / "overlay" / layer_id
        layer_dir.mkdir(parents=True, exist_ok=True)
        self.link(layer_dir / "diff", self.flat(image))
        link_id = base64.b32encode(bytes.fromhex(layer_id)[:16]).decode()[:26]
        (layer_dir / "link").write_text(link_id)
        self.link(store / "overlay" / "l" / link_id, layer_dir / "diff")
        self.podman_layers.append(
            {"id": layer_id, "created": GO_TIME, "diff-digest": f"sha256:{layer_id}"}
        )
        image_dir = self._podman_image(name, image, layer_id)
        (image_dir / "manifest").write_bytes(image.manifest)

    def _podman_image(self, name: str, image: Image, top: str) -> Path:
        store = self.root / "podmanStore"
        image_id = hexof(image.config_digest)
        image_dir = store / "overlay-images" / image_id
        image_dir.mkdir(parents=True, exist_ok=True)
        key = "=" + base64.standard_b64encode(image.config_digest.encode()).decode()
        (image_dir / key).write_bytes(image.config)
        self.podman_images.append(
            {"id": image_id, "names": [name], "layer": top, "created": GO_TIME}
        )
        self.write_podman_catalogs()
        return image_dir

    def write_podman_catalogs(self) -> None:
        store = self.root / "podmanStore"
        for sub, file_name, entries in (
            ("overlay-images", "images", self.podman_images),
            ("overlay-layers", "layers", self.podman_layers),
        ):
            (store / sub).mkdir(parents=True, exist_ok=True)
            (store / sub / f"{file_name}.json").write_bytes(go_json(entries))
            (store / sub / f"{file_name}.lock").touch()


def snapshot(root: Path) -> dict[str, str]:
    """Every path under `root` but `.metadata` and `podmanStore/overlay-images`: a file's
    sha256, a link's target, `dir` for a directory (what clients and gc care about)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir.split(os.sep)[0] == ".metadata" or rel_dir.startswith(
            "podmanStore/overlay-images"
        ):
            dirnames[:] = []
            continue
        for entry in sorted(dirnames + filenames):
            path = Path(dirpath, entry)
            rel = os.path.normpath(os.path.join(rel_dir, entry))
            if path.is_symlink():
                found[rel] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
