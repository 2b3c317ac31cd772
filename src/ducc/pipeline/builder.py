"""Building the products of one image on one platform: layers, chains and the flat root
filesystem (`ducc.repository.products` names them and says when each is complete).

Everything is named by digest and skipped when it exists and is complete. Bottom to top,
each layer is ingested (its literal tree, one publish on CernVM-FS) and its chain built:
chain n starts as a copy of chain n-1 and gets only layer n's changeset (the publisher makes
the copy: a template transaction on CernVM-FS, a hard-link clone in a directory), and the
bottom chain is a copy of the layer's own tree where that is the same. The flat tree starts
as a copy of the top chain, plus Apptainer's files. A tag update that adds or changes the
top layer downloads one blob, ingests one layer and builds one chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from ducc import log
from ducc.layers.apply import ApplyMode, apply_layer
from ducc.layers.limits import Limits
from ducc.metrics import METRICS
from ducc.oci.digest import Digest
from ducc.pipeline.blobcache import BlobCache, CachedLayer
from ducc.progress import BARS
from ducc.publish.base import CATALOG_MARKER, Ingested, Publisher
from ducc.registry.client import RegistryClient
from ducc.registry.manifests import ResolvedImage
from ducc.repository.apptainer import check_config, write_apptainer_files
from ducc.repository.layout import CHAINS, FLAT, LAYERS, Layout
from ducc.repository.metadata import add_layer_origin, layer_complete, write_layer_info
from ducc.repository.products import (
    APPTAINER_MARK,
    FlatMethod,
    LayerPlan,
    chain_complete,
    flat_complete,
)

_log = log.get("products")


@dataclass(frozen=True, slots=True)
class BuildOptions:
    skip_flat: bool = False
    skip_chains: bool = False
    overwrite_layers: bool = False
    # flat trees merged by `cvmfs_server overlay` from the layers; None: where the server can
    server_overlay: bool | None = None
    max_concurrent_downloads: int = 4
    limits: Limits = field(default_factory=Limits)


@dataclass(slots=True)
class BuildStats:
    layers_ingested: int = 0
    layers_reused: int = 0
    bytes_downloaded: int = 0
    chains_built: int = 0
    flat_built: bool = False
    flat_method: str | None = None  # how the last flat tree was built (FlatMethod)


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
        overlay = options.server_overlay
        self.overlay = publisher.overlay_available() if overlay is None else overlay

    # --- before any publish -----------------------------------------------------------

    def needed_blobs(self, image: ResolvedImage, plans: list[LayerPlan]) -> list[LayerPlan]:
        """Layers whose blob this build reads: new layers, and those of missing chains."""
        new = {p.index for p in plans if self._layer_missing(p)}
        flat_needed = not self.options.skip_flat and not self.overlay
        if flat_needed and not flat_complete(self.layout, image.config.digest):
            new.update(range(self._first_chain(plans), len(plans)))
        return [p for p in plans if p.index in new]

    def _layer_missing(self, plan: LayerPlan) -> bool:
        return self.options.overwrite_layers or not layer_complete(self.layout, plan.blob)

    def _first_chain(self, plans: list[LayerPlan]) -> int:
        """Where building starts: above the highest complete chain (0 without chains)."""
        if self.options.skip_chains:
            return 0
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

    # --- layers, chains and the flat tree ---------------------------------------------

    def build(
        self,
        image: ResolvedImage,
        plans: list[LayerPlan],
        stats: BuildStats,
        ingested: dict[Digest, Ingested],
    ) -> Path | None:
        """Every missing layer, chain and the flat tree of one platform; the flat tree
        (None with --skip-flat). `ingested` (added to) holds the layers this job ingested
        already: a manifest may list one blob twice, and platforms may share layers."""
        flat = self.layout.flat_dir(image.config.digest)
        complete = flat_complete(self.layout, image.config.digest)
        if not (self.options.skip_flat or complete):
            config = image.config
            check_config(
                env=config.env,
                entrypoint=config.entrypoint,
                cmd=config.cmd,
                working_dir=config.working_dir,
            )
        if self.options.skip_flat or complete or self.overlay:
            for plan in plans:
                self.ingest_layer(plans, plan, stats, ingested)
            if self.options.skip_flat:
                return None
            return flat if complete else self.overlay_flat(image, plans, stats)
        first = len(plans) if self.options.skip_chains else self._first_chain(plans)
        self.publisher.directories(self._parents(plans[first:], flat))
        for plan in plans:
            if plan.index >= first and self._chain_in_ingest(plan, ingested):
                self._ingest_with_chain(plans, plan, stats, ingested)
                continue
            self.ingest_layer(plans, plan, stats, ingested)
            if plan.index >= first:
                self._build_chain(plans, plan, stats, ingested)
        return self._build_flat(image, plans, stats)

    def _chain_in_ingest(self, plan: LayerPlan, ingested: dict[Digest, Ingested]) -> bool:
        """Whether the layer's ingest can build its chain in the same pass: where the
        publisher can, when the layer is to be ingested now."""
        if not self.publisher.chains_in_ingest or plan.blob in ingested:
            return False
        return self._layer_missing(plan)

    def _ingest_with_chain(
        self,
        plans: list[LayerPlan],
        plan: LayerPlan,
        stats: BuildStats,
        ingested: dict[Digest, Ingested],
    ) -> None:
        """The layer's literal tree and its chain from one pass over the layer (one read and
        decompression; each tree written with files of its own)."""
        chain = self.layout.chain_dir(plan.chain)
        self._remove_incomplete(chain)
        below = self._chain_below(plans, plan)  # complete: built or found before this one
        with self.publisher.product(chain, template=below) as tree:
            self._ingest(plan, below, stats, ingested, chain=tree)
            _new_marker(tree)
        self._chain_done(plan, stats)

    def _parents(self, chains: list[LayerPlan], flat: Path) -> list[Path]:
        """The directories the products hang from, top first: each its own catalog."""
        parents = [self.layout.chain_dir(p.chain).parent for p in chains]
        tops = [self.layout.root / CHAINS] if chains else []
        return [*tops, *dict.fromkeys(parents), self.layout.root / FLAT, flat.parent]

    def ingest_layer(
        self,
        plans: list[LayerPlan],
        plan: LayerPlan,
        stats: BuildStats,
        ingested: dict[Digest, Ingested],
    ) -> None:
        """Publish the layer's literal tree where it is missing."""
        if plan.blob in ingested or not self._layer_missing(plan):
            stats.layers_reused += 1
            METRICS.inc("ducc_layers_reused_total")
            return
        self._ingest(plan, self._chain_below(plans, plan), stats, ingested)

    def _ingest(
        self,
        plan: LayerPlan,
        lower: Path | None,
        stats: BuildStats,
        ingested: dict[Digest, Ingested],
        *,
        chain: Path | None = None,
    ) -> None:
        layerfs = self.layout.layerfs(plan.blob)
        with self.tracked(plan, "ingest") as layer:
            ingested[plan.blob] = self.publisher.ingest_layer(
                layerfs, layer, lower, replace=self.options.overwrite_layers, chain=chain
            )
        stats.layers_ingested += 1
        METRICS.inc("ducc_layers_ingested_total")

    def _chain_below(self, plans: list[LayerPlan], plan: LayerPlan) -> Path | None:
        """The tree under `plan`'s layer, for hard links to files of lower layers."""
        if plan.index == 0:
            return None
        below = plans[plan.index - 1].chain
        return self.layout.chain_dir(below) if chain_complete(self.layout, below) else None

    def _build_chain(
        self,
        plans: list[LayerPlan],
        plan: LayerPlan,
        stats: BuildStats,
        ingested: dict[Digest, Ingested],
    ) -> None:
        """Chain n: a copy of chain n-1 (or of the bottom layer's own tree, where that is
        the same) with layer n's changeset applied."""
        chain = self.layout.chain_dir(plan.chain)
        self._remove_incomplete(chain)
        template = None
        if plan.index > 0:
            template = self.layout.chain_dir(plans[plan.index - 1].chain)
        elif (measured := ingested.get(plan.blob)) is not None and measured.plain:
            template = self.layout.layerfs(plan.blob)
        with self.publisher.product(chain, template=template) as tree:
            if template is None or plan.index > 0:
                self._apply(plan, tree)
            _new_marker(tree)
        self._chain_done(plan, stats)

    def _chain_done(self, plan: LayerPlan, stats: BuildStats) -> None:
        stats.chains_built += 1
        _log.info("chain_built", chain=str(plan.chain), layer=str(plan.blob))

    def _apply(self, plan: LayerPlan, tree: Path) -> None:
        with self.tracked(plan, "apply") as layer:
            apply_layer(
                tree, layer.open(), mode=ApplyMode.CHANGESET, limits=layer.limits, name=layer.name
            )

    def _build_flat(self, image: ResolvedImage, plans: list[LayerPlan], stats: BuildStats) -> Path:
        """A copy of the top chain plus Apptainer's files; without chains, every layer
        applied in turn."""
        flat = self.layout.flat_dir(image.config.digest)
        self._remove_incomplete(flat)
        chains = plans and not self.options.skip_chains
        top = self.layout.chain_dir(plans[-1].chain) if chains else None
        with self.publisher.product(flat, template=top) as tree:
            if top is None:
                for plan in plans:
                    self._apply(plan, tree)
            _write_apptainer(image, tree)
            _new_marker(tree)
        stats.flat_built = True
        stats.flat_method = FlatMethod.CHAINS if chains else FlatMethod.LAYERS
        _log.info(
            "flat_built", image=str(image.reference), path=str(flat), method=stats.flat_method
        )
        return flat

    def _remove_incomplete(self, product: Path) -> None:
        """A product without its completion mark (left by another tool, or an older run) is
        never trusted: it goes before it is built again."""
        if product.exists() or product.is_symlink():
            _log.warning("incomplete_product_rebuilt", path=str(product))
            self.publisher.delete([product])

    def overlay_flat(self, image: ResolvedImage, plans: list[LayerPlan], stats: BuildStats) -> Path:
        """The flat tree merged on the server from the published layer trees (catalog level,
        no data copied); Apptainer's files follow in the image's final transaction."""
        flat = self.layout.flat_dir(image.config.digest)
        self._remove_incomplete(flat)
        self.publisher.overlay([self.layout.layerfs(p.blob) for p in plans], flat)
        stats.flat_built = True
        stats.flat_method = FlatMethod.OVERLAY
        _log.info("flat_built", image=str(image.reference), path=str(flat), method="overlay")
        return flat

    # --- inside the final transaction -------------------------------------------------

    def write_layer_metadata(
        self, image: ResolvedImage, plans: list[LayerPlan], ingested: dict[Digest, Ingested]
    ) -> None:
        """Completion marks of the layers just ingested; every layer names this config."""
        for plan in plans:
            measured = ingested.get(plan.blob)
            if measured is not None:
                write_layer_info(self.layout, plan.blob, plan.diff_id, measured.digests.diff_size)
            add_layer_origin(self.layout, plan.blob, image.config.digest)
        shards = [self.layout.layer_dir(p.blob).parent for p in plans]
        self._markers([self.layout.root / LAYERS, *shards])

    def complete_flat(self, image: ResolvedImage, flat: Path) -> None:
        """Apptainer's files in a flat tree that lacks them (inside a transaction)."""
        if not (flat / APPTAINER_MARK).is_dir():
            _write_apptainer(image, flat)

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


def _write_apptainer(image: ResolvedImage, tree: Path) -> None:
    config = image.config
    write_apptainer_files(
        tree,
        env=config.env,
        entrypoint=config.entrypoint,
        cmd=config.cmd,
        working_dir=config.working_dir,
    )


def _new_marker(tree: Path) -> None:
    """A fresh `.cvmfscatalog` in `tree`: its mtime says when the product was made (gc's
    grace period), and a copy's marker is its source's, which must not be touched."""
    marker = tree / CATALOG_MARKER
    marker.unlink(missing_ok=True)
    marker.touch()
