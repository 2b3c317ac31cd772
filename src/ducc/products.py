"""The products of one image on one platform: layers, chains and the flat root filesystem.

Everything is named by digest and skipped when it exists and is complete. Layers are
ingested first (each its own publish on CernVM-FS); chains and the flat tree are built
inside the image's transaction, each staged and renamed into place: chain n is a hard-link
clone of chain n-1 with layer n applied, the flat tree a clone of the top chain plus
Apptainer's files. An update that changes the top layer builds one chain and downloads
one blob.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ducc import log
from ducc.apptainer import write_apptainer_files
from ducc.blobcache import BlobCache, CachedLayer
from ducc.digest import Digest, chain_ids
from ducc.errors import ManifestError
from ducc.layers import ApplyMode, Limits, apply_layer, remove_tree, staged
from ducc.layers.clone import clone_tree
from ducc.layers.stream import LayerDigests
from ducc.layout import CATALOG_MARKER, CHAINS, FLAT, LAYERS, Layout
from ducc.metadata import add_layer_origin, layer_complete, write_layer_info
from ducc.metrics import METRICS
from ducc.oci import Descriptor, layer_compression
from ducc.progress import BARS
from ducc.publish.base import Publisher
from ducc.registry.client import RegistryClient
from ducc.registry.manifests import ResolvedImage

_log = log.get("products")
APPTAINER_MARK = ".singularity.d"


@dataclass(frozen=True, slots=True)
class BuildOptions:
    skip_flat: bool = False
    skip_chains: bool = False
    overwrite_layers: bool = False
    server_overlay: bool = False  # flat trees merged by `cvmfs_server overlay` from the layers
    max_concurrent_downloads: int = 4
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True, slots=True)
class LayerPlan:
    index: int
    descriptor: Descriptor
    diff_id: Digest
    chain: Digest

    @property
    def blob(self) -> Digest:
        return self.descriptor.digest


@dataclass(slots=True)
class BuildStats:
    layers_ingested: int = 0
    layers_reused: int = 0
    bytes_downloaded: int = 0
    chains_built: int = 0
    flat_built: bool = False


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


class ImageBuilder:
    """Builds one resolved image into the repository through a publisher."""

    def __init__(
        self,
        publisher: Publisher,
        client: RegistryClient,
        cache: BlobCache,
        options: BuildOptions,
    ) -> None:
        self.publisher = publisher
        self.layout = Layout(publisher.root)
        self.client = client
        self.cache = cache
        self.options = options

    # --- before the transaction -------------------------------------------------------

    def needed_blobs(self, image: ResolvedImage, plans: list[LayerPlan]) -> list[LayerPlan]:
        """Layers whose blob this build reads: new layers, and those of missing chains."""
        new = {p.index for p in plans if self._layer_missing(p)}
        flat_needed = not self.options.skip_flat and not self.options.server_overlay
        if flat_needed and not flat_complete(self.layout, image.config.digest):
            start = 0 if self.options.skip_chains else self._chains_present(plans)
            new.update(range(start, len(plans)))
        return [p for p in plans if p.index in new]

    def _layer_missing(self, plan: LayerPlan) -> bool:
        return self.options.overwrite_layers or not layer_complete(self.layout, plan.blob)

    def _chains_present(self, plans: list[LayerPlan]) -> int:
        """How many chains from the bottom exist: the build continues from there."""
        for plan in reversed(plans):
            if chain_complete(self.layout, plan.chain):
                return plan.index + 1
        return 0

    def download(self, repository: str, plans: list[LayerPlan]) -> int:
        descriptors = [p.descriptor for p in plans]
        return self.cache.fetch(
            self.client,
            repository,
            descriptors,
            concurrency=self.options.max_concurrent_downloads,
        )

    def opener(self, plan: LayerPlan) -> CachedLayer:
        return CachedLayer(
            name=str(plan.blob),
            path=self.cache.path(plan.blob),
            media_type=plan.descriptor.media_type,
            size=plan.descriptor.size,
            diff_id=plan.diff_id,
            limits=self.options.limits,
        )

    @contextlib.contextmanager
    def tracked(self, plan: LayerPlan, what: str) -> Iterator[CachedLayer]:
        """The layer's opener, reporting the bytes it reads to a progress bar on a terminal."""
        with BARS.task(f"{what} {plan.blob.hex[:12]}", plan.descriptor.size) as advance:
            yield replace(self.opener(plan), progress=advance)

    def ingest_layers(
        self,
        plans: list[LayerPlan],
        stats: BuildStats,
        ingested: dict[Digest, LayerDigests] | None = None,
    ) -> dict[Digest, LayerDigests]:
        """Publish the literal content of every missing layer; what each pass measured.
        `ingested` (added to) holds the layers this job ingested already: a manifest may
        list one blob twice, and platforms of an index may share layers."""
        ingested = {} if ingested is None else ingested
        for plan in plans:
            if plan.blob in ingested or not self._layer_missing(plan):
                stats.layers_reused += 1
                METRICS.inc("ducc_layers_reused_total")
                continue
            layerfs = self.layout.layerfs(plan.blob)
            lower = self._chain_below(plans, plan)
            with self.tracked(plan, "ingest") as layer:
                ingested[plan.blob] = self.publisher.ingest_layer(layerfs, layer, lower)
            stats.layers_ingested += 1
            METRICS.inc("ducc_layers_ingested_total")
        return ingested

    def _chain_below(self, plans: list[LayerPlan], plan: LayerPlan) -> Path | None:
        """The tree under `plan`'s layer, for hard links to files of lower layers."""
        if plan.index == 0:
            return None
        below = plans[plan.index - 1].chain
        return self.layout.chain_dir(below) if chain_complete(self.layout, below) else None

    # --- inside the transaction -------------------------------------------------------

    def write_layer_metadata(
        self, image: ResolvedImage, plans: list[LayerPlan], ingested: dict[Digest, LayerDigests]
    ) -> None:
        """Completion marks of the layers just ingested; every layer names this config."""
        for plan in plans:
            measured = ingested.get(plan.blob)
            if measured is not None:
                write_layer_info(self.layout, plan.blob, plan.diff_id, measured.diff_size)
            add_layer_origin(self.layout, plan.blob, image.config.digest)
        shards = [self.layout.layer_dir(p.blob).parent for p in plans]
        self._markers([self.layout.root / LAYERS, *shards])

    def build_flat(self, image: ResolvedImage, plans: list[LayerPlan], stats: BuildStats) -> Path:
        flat = self.layout.flat_dir(image.config.digest)
        if flat_complete(self.layout, image.config.digest):
            return flat
        if flat.exists() or flat.is_symlink():
            _log.warning("incomplete_flat_rebuilt", path=str(flat))
            remove_tree(flat)
        top = None if self.options.skip_chains else self._build_chains(plans, stats)
        self._markers([flat.parent])  # `.flat/` itself: `top_markers`, outside a flat lease
        with staged(flat) as tmp:
            if top is not None:
                clone_tree(top, tmp)
            elif plans:
                for plan in plans:
                    with self.tracked(plan, "apply") as layer:
                        apply_layer(tmp, layer.open(), limits=layer.limits, name=layer.name)
            config = image.config
            write_apptainer_files(
                tmp,
                env=config.env,
                entrypoint=config.entrypoint,
                cmd=config.cmd,
                working_dir=config.working_dir,
            )
            _new_marker(tmp)
        stats.flat_built = True
        _log.info("flat_built", image=str(image.reference), path=str(flat))
        return flat

    def overlay_flat(self, image: ResolvedImage, plans: list[LayerPlan], stats: BuildStats) -> Path:
        """The flat tree merged on the server from the published layer trees (catalog level,
        no data copied); Apptainer's files follow in the image's final transaction."""
        flat = self.layout.flat_dir(image.config.digest)
        if flat_complete(self.layout, image.config.digest):
            return flat
        if flat.exists() or flat.is_symlink():  # merged by a run that died before its files
            _log.warning("incomplete_flat_rebuilt", path=str(flat))
            self.publisher.delete([flat])
        self.publisher.overlay([self.layout.layerfs(p.blob) for p in plans], flat)
        stats.flat_built = True
        return flat

    def complete_flat(self, image: ResolvedImage, flat: Path) -> None:
        """Apptainer's files in a flat tree that lacks them (inside a transaction)."""
        if (flat / APPTAINER_MARK).is_dir():
            return
        config = image.config
        write_apptainer_files(
            flat,
            env=config.env,
            entrypoint=config.entrypoint,
            cmd=config.cmd,
            working_dir=config.working_dir,
        )

    def _build_chains(self, plans: list[LayerPlan], stats: BuildStats) -> Path | None:
        """Chains from the highest existing one to the top; the top chain's path."""
        start = self._chains_present(plans)
        for plan in plans[start:]:
            chain = self.layout.chain_dir(plan.chain)
            if chain.exists() or chain.is_symlink():
                remove_tree(chain)  # exists without its mark: incomplete, never trusted
            self._markers([chain.parent])
            with staged(chain) as tmp:
                if plan.index > 0:
                    clone_tree(self.layout.chain_dir(plans[plan.index - 1].chain), tmp)
                with self.tracked(plan, "apply") as layer:
                    apply_layer(
                        tmp,
                        layer.open(),
                        mode=ApplyMode.CHANGESET,
                        limits=layer.limits,
                        name=layer.name,
                    )
                _new_marker(tmp)
            stats.chains_built += 1
        return self.layout.chain_dir(plans[-1].chain) if plans else None

    def top_markers(self) -> None:
        """`.flat/.cvmfscatalog` and `.chains/.cvmfscatalog` where those trees exist."""
        self._markers(
            [d for d in (self.layout.root / FLAT, self.layout.root / CHAINS) if d.is_dir()]
        )

    def _markers(self, directories: list[Path]) -> None:
        """`.cvmfscatalog` files so each product tree is its own nested catalog."""
        for directory in directories:
            marker = directory / CATALOG_MARKER
            if not marker.exists():
                directory.mkdir(parents=True, exist_ok=True)
                marker.touch()


def _new_marker(tree: Path) -> None:
    """A fresh `.cvmfscatalog` in `tree`: its mtime says when the product was made (gc's
    grace period), and a clone's marker is a shared inode that must not be touched."""
    marker = tree / CATALOG_MARKER
    marker.unlink(missing_ok=True)
    marker.touch()
