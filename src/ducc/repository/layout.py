"""Where every product lives inside a repository root R (DUCC's layout, kept for clients).

R/.layers/<xx>/<blob hex>/layerfs/            one layer's literal content
R/.layers/<xx>/<blob hex>/.metadata/          layers.json, origin.json
R/.chains/<xx>/<chain hex>/                   layers 1..n applied (OCI ChainID)
R/.flat/<xx>/<config hex>/                    the flat root filesystem + .singularity.d
R/.metadata/<registry>/<repository>:<tag>/    manifest.json (and index.json)
R/.multiarch/<arch>[:<variant>]/<registry>/<repository>:<tag>   per-platform links
R/<registry>/<repository>:<tag>               public symlink to the flat tree
R/podmanStore/                                podman additional image store
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ducc.oci.digest import Digest
from ducc.oci.reference import Reference

CATALOG_MARKER = ".cvmfscatalog"
LAYERS = ".layers"
CHAINS = ".chains"
FLAT = ".flat"
METADATA = ".metadata"
MULTIARCH = ".multiarch"
PODMAN_STORE = "podmanStore"


@dataclass(frozen=True, slots=True)
class Layout:
    root: Path

    def layer_dir(self, blob: Digest) -> Path:
        return self.root / LAYERS / blob.prefix / blob.hex

    def layerfs(self, blob: Digest) -> Path:
        return self.layer_dir(blob) / "layerfs"

    def layer_metadata(self, blob: Digest) -> Path:
        return self.layer_dir(blob) / METADATA

    def chain_dir(self, chain: Digest) -> Path:
        return self.root / CHAINS / chain.prefix / chain.hex

    def flat_dir(self, config: Digest) -> Path:
        return self.root / FLAT / config.prefix / config.hex

    def public_path(self, ref: Reference) -> Path:
        return self.root / ref.simple_name

    def metadata_dir(self, ref: Reference) -> Path:
        return self.root / METADATA / ref.simple_name

    def multiarch_path(self, platform_label: str, ref: Reference) -> Path:
        """`platform_label` is `<arch>` or `<arch>:<variant>` (DUCC's spelling)."""
        return self.root / MULTIARCH / platform_label / ref.simple_name

    @property
    def podman_store(self) -> Path:
        return self.root / PODMAN_STORE

    def relative(self, path: Path) -> str:
        """`path` relative to the repository root, as `cvmfs_server` takes it."""
        return os.fspath(path.relative_to(self.root))


def relative_link(link: Path, target: Path) -> str:
    """The relative symlink text that makes `link` point at `target` (both absolute)."""
    return os.path.relpath(target, link.parent)
