"""The products of one image on one platform as the repository names them, and when each
is complete: a layer plan (blob, diff_id, ChainID per layer), a chain by its catalog marker,
a flat tree by Apptainer's directory (written last, so a flat tree without it is unfinished),
and how a flat tree was made. `ducc.pipeline.builder` builds them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ducc.errors import ManifestError
from ducc.oci.digest import Digest, chain_ids
from ducc.oci.model import Descriptor, layer_compression
from ducc.publish.base import CATALOG_MARKER
from ducc.registry.manifests import ResolvedImage
from ducc.repository.layout import Layout

APPTAINER_MARK = ".singularity.d"


class FlatMethod(StrEnum):
    CHAINS = "chains"  # a copy of the top chain (template transaction / hard-link clone)
    LAYERS = "layers"  # every layer applied (--skip-chains)
    OVERLAY = "overlay"  # `cvmfs_server overlay` of the published layer trees


@dataclass(frozen=True, slots=True)
class LayerPlan:
    index: int
    descriptor: Descriptor
    diff_id: Digest
    chain: Digest

    @property
    def blob(self) -> Digest:
        return self.descriptor.digest


def plan_layers(image: ResolvedImage) -> list[LayerPlan]:
    """Each layer with its diff_id and ChainID; refuses foreign or unknown layer types, and
    digests the repository layout cannot name (it names products by sha256 hex only)."""
    for descriptor in image.manifest.layers:
        layer_compression(descriptor.media_type)
    named = [image.config.digest, *image.config.diff_ids]
    named += [d.digest for d in image.manifest.layers]
    other = sorted({d.algorithm for d in named} - {"sha256"})
    if other:
        raise ManifestError(
            f"{image.reference}: {', '.join(other)} digests are not supported: the repository "
            "names configs, layers and chains by sha256 digests"
        )
    diff_ids = list(image.config.diff_ids)
    chains = chain_ids(diff_ids)
    return [LayerPlan(i, d, diff_ids[i], chains[i]) for i, d in enumerate(image.manifest.layers)]


def chain_complete(layout: Layout, chain: Digest) -> bool:
    return (layout.chain_dir(chain) / CATALOG_MARKER).is_file()


def flat_complete(layout: Layout, config: Digest) -> bool:
    return (layout.flat_dir(config) / APPTAINER_MARK).is_dir()
