"""`verify --deep`: the content of an image's products, checked against each other.

Products are built independently from one verified blob each: chain n by applying layer n
to a clone of chain n-1, the layer tree by ingesting the same blob, the flat tree as a clone
of the top chain. So each layer tree is compared with what the chain named by its diff_ids
(ChainID) gained over the chain below, and the flat tree with the top chain, or (without
chains) with its layers applied in order. A mismatch names the product that must be damaged
(a file the chain gained but the layer lacks: the layer; a file of the layer the chain
lacks: the chain) or, where the evidence allows both, both; `convert --repair` rebuilds
them. Each product is checked once per run, file contents hashed once per inode.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ducc.errors import DuccError
from ducc.layers.paths import Resolver
from ducc.layers.tarstream import OPAQUE, WHITEOUT
from ducc.oci.digest import Digest, chain_ids
from ducc.publish.base import CATALOG_MARKER
from ducc.repository.apptainer import BIND_FILES, META, MOUNT_POINTS
from ducc.repository.apptainer_scripts import ROOT_LINKS
from ducc.repository.layout import Layout
from ducc.repository.metadata import CONFIG_FILE, LAYERS_FILE, MANIFEST_FILE
from ducc.repository.trees import FILE, LINK, Contents, Node, ancestors, landing, scan, unchanged

SHOWN = 3  # paths named per damaged product


@dataclass(frozen=True, slots=True)
class Damage:
    """A product whose content disagrees with the products it was built alongside."""

    kind: str  # "layer", "chain" or "flat tree"
    product: Path
    paths: tuple[str, ...]  # what differs (relative to the product), some of them
    count: int  # how many in all
    why: str

    def __str__(self) -> str:
        more = f" and {self.count - len(self.paths)} more" if self.count > len(self.paths) else ""
        return f"{self.kind} {self.product}: {', '.join(self.paths)}{more}: {self.why}"


@dataclass(frozen=True, slots=True)
class ImageProducts:
    """The products a recorded image names: layers and chains bottom first."""

    flat: Path
    layers: tuple[Path, ...]
    chains: tuple[Path, ...]  # empty when the record has no readable config


def image_products(layout: Layout, record: Path) -> ImageProducts | None:
    """What the record in `record` (a metadata directory) names, or None if unreadable."""
    try:
        manifest = json.loads((record / MANIFEST_FILE).read_bytes())
        config = Digest.parse(manifest["config"]["digest"])
        blobs = [Digest.parse(layer["digest"]) for layer in manifest.get("layers", [])]
    except (OSError, ValueError, KeyError, TypeError, DuccError):
        return None
    layers = tuple(layout.layer_dir(blob) for blob in blobs)
    chains: tuple[Path, ...] = ()
    diff_ids = _diff_ids(record, config) or _recorded_diff_ids(layers)
    if diff_ids is not None and len(diff_ids) == len(blobs):
        chains = tuple(layout.chain_dir(chain) for chain in chain_ids(diff_ids))
    return ImageProducts(layout.flat_dir(config), layers, chains)


def _diff_ids(record: Path, config: Digest) -> list[Digest] | None:
    try:
        raw = (record / CONFIG_FILE).read_bytes()
        if Digest.of(raw, config.algorithm) != config:
            return None
        return [Digest.parse(d) for d in json.loads(raw)["rootfs"]["diff_ids"]]
    except (OSError, ValueError, KeyError, TypeError, DuccError):
        return None


def _recorded_diff_ids(layers: tuple[Path, ...]) -> list[Digest] | None:
    """The diff_ids the layers' own metadata records (when the config is not readable)."""
    try:
        return [
            Digest.parse(
                json.loads((layer / ".metadata" / LAYERS_FILE).read_bytes())[0]["diff-digest"]
            )
            for layer in layers
        ]
    except (OSError, ValueError, KeyError, IndexError, TypeError, DuccError):
        return None


class _Findings:
    """Damaged paths collected per product."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, Path, str], list[str]] = {}

    def add(self, kind: str, product: Path, path: str, why: str) -> None:
        self.found.setdefault((kind, product, why), []).append(path)

    def damages(self) -> list[Damage]:
        return [
            Damage(kind, product, tuple(sorted(paths)[:SHOWN]), len(paths), why)
            for (kind, product, why), paths in self.found.items()
        ]


class DeepCheck:
    def __init__(self) -> None:
        self.contents = Contents()
        self._done: set[Path] = set()

    def image(self, products: ImageProducts) -> list[Damage]:
        """The damaged products of one image (those another image showed already: none)."""
        findings = _Findings()
        chains = products.chains
        for index, (layer, chain) in enumerate(zip(products.layers, chains, strict=False)):
            below = chains[index - 1] if index else None
            ready = _complete_chain(chain) and _complete_layer(layer)
            ready = ready and (below is None or _complete_chain(below))
            if ready and self._first(chain):
                self._layer(findings, layer, below, chain)
        flat = products.flat
        if (flat / META).is_dir() and self._first(flat):
            top = chains[-1] if chains and _complete_chain(chains[-1]) else None
            if top is not None:
                self._flat_against_chain(findings, flat, top)
            elif all((layer / "layerfs").is_dir() for layer in products.layers):
                self._flat_against_layers(findings, flat, products.layers)
        return findings.damages()

    def _first(self, product: Path) -> bool:
        if product in self._done:
            return False
        self._done.add(product)
        return True

    def _same(self, first: tuple[Path, str, Node], second: tuple[Path, str, Node]) -> bool:
        return self.contents.same(
            (first[0] / first[1], first[2]), (second[0] / second[1], second[2])
        )

    def _layer(self, out: _Findings, layer: Path, below: Path | None, chain: Path) -> None:
        """Layer n against chain n - chain n-1."""
        layerfs = layer / "layerfs"
        ours, upper = scan(layerfs), scan(chain)
        lower = scan(below) if below is not None else {}
        marks = _Marks(Resolver(os.fspath(chain)), ours)
        for rel, node in ours.items():
            if marks.is_mark(rel):
                continue
            spot = marks.landing(rel)
            if node.directory:
                continue  # maybe made for an entry below it, which the chain put elsewhere
            if spot is None or spot not in upper:
                out.add("chain", chain, spot or rel, "missing; its layer has it")
            elif not self._same((layerfs, rel, node), (chain, spot, upper[spot])):
                out.add("layer", layer, rel, "differs from the chain of its diff_id")
                out.add("chain", chain, spot, "differs from its layer")
        for spot, node in upper.items():
            gained = spot not in lower or not unchanged(lower[spot], node)
            if gained and not node.directory and spot not in marks.landed:
                out.add("layer", layer, spot, "missing; the chain of its diff_id gained it")
        for spot in lower:
            if spot not in upper and _topmost(spot, upper) and not marks.removes(spot, upper):
                out.add("chain", chain, spot, "missing, though no whiteout of its layer")
                out.add("layer", layer, spot, "lacks the whiteout that removed it")

    def _flat_against_chain(self, out: _Findings, flat: Path, top: Path) -> None:
        """The flat tree is a clone of the top chain plus Apptainer's files."""
        ours, chain = scan(flat), scan(top)
        for rel, node in chain.items():
            found = ours.get(rel)
            if found is None:
                out.add("flat tree", flat, rel, "missing; the top chain has it")
            elif not node.directory and not self._same((top, rel, node), (flat, rel, found)):
                out.add("flat tree", flat, rel, "differs from the top chain")
        for rel, node in ours.items():
            if rel not in chain and not _apptainer(rel, node):
                out.add("flat tree", flat, rel, "not in the top chain")

    def _flat_against_layers(self, out: _Findings, flat: Path, layers: Iterable[Path]) -> None:
        """Without chains: each layer's entries, from the top, where no upper layer hid or
        replaced them; and no file of the flat tree that none of them holds."""
        ours, view = scan(flat), _Upper()
        resolver = Resolver(os.fspath(flat))
        stack = list(layers)
        for layer in reversed(stack):
            layerfs = layer / "layerfs"
            entries = scan(layerfs)
            marks = _Marks(resolver, entries)
            for rel, node in entries.items():
                spot = None if marks.is_mark(rel) else marks.landing(rel)
                if spot is None or view.hides(spot):
                    continue
                found = ours.get(spot)
                if found is None:
                    out.add("flat tree", flat, spot, "missing; a layer has it")
                elif not node.directory and not self._same(
                    (layerfs, rel, node), (flat, spot, found)
                ):
                    out.add("flat tree", flat, spot, "differs from its layer")
                    out.add("layer", layer, rel, "differs from the flat tree")
            view.add(marks, entries)
        for rel, node in ours.items():
            if not node.directory and rel not in view.claimed and not _apptainer(rel, node):
                out.add("flat tree", flat, rel, "in none of its layers")
                for layer in stack:
                    out.add("layer", layer, rel, "may have lost it (the flat tree has it)")


class _Marks:
    """A layer's whiteouts and opaque markers, and where its entries land in a tree."""

    def __init__(self, resolver: Resolver, entries: dict[str, Node]) -> None:
        self.resolver = resolver
        self.landed: set[str] = set()
        self.hidden: set[str] = set()  # paths its whiteouts remove from the layers below
        self.opaque: set[str] = set()  # directories whose lower content it hides
        for rel in entries:
            parent, _, base = rel.rpartition("/")
            if base == OPAQUE:
                self.opaque.add(self._spot(parent) if parent else "")
            elif base.startswith(WHITEOUT):
                name = base[len(WHITEOUT) :]
                self.hidden.add(self._spot(f"{parent}/{name}" if parent else name))

    def _spot(self, rel: str) -> str:
        return landing(self.resolver, rel) or rel

    @staticmethod
    def is_mark(rel: str) -> bool:
        return rel.rpartition("/")[2].startswith(WHITEOUT)

    def landing(self, rel: str) -> str | None:
        spot = landing(self.resolver, rel)
        if spot is not None:
            self.landed.add(spot)
        return spot

    def removes(self, spot: str, upper: dict[str, Node]) -> bool:
        """Whether the layer accounts for `spot` vanishing from the chain below."""
        for path in ancestors(spot):
            parent = path.rpartition("/")[0]
            if path in self.hidden or path in self.landed or parent in self.opaque:
                return True
            if path in upper and not upper[path].directory:
                return True  # a directory replaced by a file or a link
        return False


class _Upper:
    """What the layers above (seen so far, top down) hide from those below."""

    def __init__(self) -> None:
        self.claimed: set[str] = set()
        self.covering: set[str] = set()  # non-directories and whited-out paths
        self.opaque: set[str] = set()

    def hides(self, spot: str) -> bool:
        paths = ancestors(spot)
        if any(path in self.covering for path in paths):
            return True
        return any(path in self.opaque for path in paths[1:]) or "" in self.opaque

    def add(self, marks: _Marks, entries: dict[str, Node]) -> None:
        self.claimed |= marks.landed
        self.covering |= marks.hidden
        self.covering |= {
            spot
            for rel, node in entries.items()
            if not node.directory and (spot := landing(marks.resolver, rel)) is not None
        }
        self.opaque |= marks.opaque


def _topmost(spot: str, upper: dict[str, Node]) -> bool:
    """Whether `spot` is the highest path that vanished (its parent is still there)."""
    parent = spot.rpartition("/")[0]
    return not parent or parent in upper


def _apptainer(rel: str, node: Node) -> bool:
    """Entries `write_apptainer_files` adds to a flat tree."""
    if rel == META or rel.startswith(f"{META}/"):
        return True
    if rel in ROOT_LINKS:
        return node.kind == LINK
    if rel in BIND_FILES:
        return node.kind == FILE and node.size == 0
    return rel in MOUNT_POINTS and node.directory


def _complete_layer(layer: Path) -> bool:
    return (layer / "layerfs").is_dir() and (layer / ".metadata" / LAYERS_FILE).is_file()


def _complete_chain(chain: Path) -> bool:
    return (chain / CATALOG_MARKER).is_file()
