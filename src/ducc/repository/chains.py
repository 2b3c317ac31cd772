"""Chains under `.chains/`: the ones ducc built, and DUCC's names for its own.

ducc names a chain by its OCI ChainID over diff_ids (image-spec `config.md`). DUCC
(`cvmfs_ducc`) named its chains `sha256("sha256:<blob 0>")`, then
`sha256("<previous chain> <blob n>")`, over the compressed blob digests. gc removes a chain
only when it recognises it as ducc's, from what the layers' own metadata says (`layers.json`
gives each blob's diff_id, `origin.json` the images using it), so it needs no record of the
image the chain was built for; anything else is left alone unless the operator says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ducc.oci.digest import Digest, digest_problem
from ducc.repository.layout import LAYERS, Layout
from ducc.repository.metadata import read_diff_id, read_origins


def cvmfs_ducc_chain_ids(blobs: Sequence[Digest]) -> list[Digest]:
    """DUCC's chain names for an image's layer blobs (`Manifest.GetChainIDs`)."""
    chains: list[Digest] = []
    for blob in blobs:
        text = f"{chains[-1]} {blob}" if chains else str(blob)
        chains.append(Digest.from_string(text))
    return chains


@dataclass(frozen=True, slots=True)
class LayerFacts:
    """What a layer's metadata says: its blob, its diff_id and the configs that use it."""

    blob: str  # hex
    diff_id: str  # hex
    origins: frozenset[str]


def read_layer_facts(root: Path) -> list[LayerFacts]:
    """Every layer under `R/.layers` whose `layers.json` names a diff_id."""
    layout = Layout(root)
    facts = []
    for shard in sorted((root / LAYERS).glob("??")):
        for layer in sorted(shard.iterdir()):
            if digest_problem(f"sha256:{layer.name}") is not None:
                continue
            blob = Digest("sha256", layer.name)
            diff_id = read_diff_id(layout, blob)
            if diff_id is not None:
                origins = frozenset(read_origins(layout, blob))
                facts.append(LayerFacts(layer.name, diff_id.hex, origins))
    return facts


def ducc_chains(present: Iterable[str], layers: Sequence[LayerFacts]) -> set[str]:
    """The chains among `present` (hex names) that ducc built: a one-layer chain is named by
    a layer's diff_id; a longer one extends a recognised chain by a layer of an image that
    also uses the chain's top layer."""
    present = set(present)
    by_diff_id = {fact.diff_id: fact for fact in layers}
    by_config: dict[str, list[LayerFacts]] = {}
    for fact in layers:
        for config in fact.origins:
            by_config.setdefault(config, []).append(fact)
    top = {chain: by_diff_id[chain] for chain in present if chain in by_diff_id}
    frontier = list(top)
    while frontier:
        following = []
        for chain in frontier:
            for fact in _neighbours(top[chain], by_config):
                child = Digest.from_string(f"sha256:{chain} sha256:{fact.diff_id}").hex
                if child in present and child not in top:
                    top[child] = fact
                    following.append(child)
        frontier = following
    return set(top)


def _neighbours(fact: LayerFacts, by_config: dict[str, list[LayerFacts]]) -> list[LayerFacts]:
    """The layers that share an image with `fact`'s layer (each once)."""
    seen: dict[str, LayerFacts] = {}
    for config in fact.origins:
        for other in by_config.get(config, ()):
            seen.setdefault(other.diff_id, other)
    return list(seen.values())
