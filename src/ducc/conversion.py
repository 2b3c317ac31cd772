"""One image's conversion: download what is missing, ingest new layers, then publish the
flat trees, layer metadata, links, podman entry and image metadata in as few
transactions as the publisher allows (one; two or more under gateway leases).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.digest import Digest
from ducc.layers.stream import LayerDigests
from ducc.layout import FLAT, Layout
from ducc.pointers import Converted, write_pointers
from ducc.products import BuildStats, ImageBuilder, LayerPlan, flat_complete, plan_layers
from ducc.publish.base import Publisher
from ducc.reference import Reference
from ducc.registry.manifests import ResolvedImage

_log = log.get("conversion")


@dataclass
class ImageJob:
    publisher: Publisher
    builder: ImageBuilder
    ref: Reference
    images: list[ResolvedImage]
    multi_arch: bool = False
    skip_podman: bool = False
    stats: BuildStats = field(default_factory=BuildStats)
    ingested: dict[Digest, LayerDigests] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.plans = [plan_layers(image) for image in self.images]

    @property
    def pairs(self) -> list[tuple[ResolvedImage, list[LayerPlan]]]:
        return list(zip(self.images, self.plans, strict=True))

    def run(self) -> BuildStats:
        """Blobs, then chains and flat trees (one publish), then the layers' literal trees
        (one ingest each; a hard link to a file of a lower layer is copied from the chain
        below), then metadata, links and the podman entry (one publish)."""
        builder = self.builder
        needed = [p for image, plan in self.pairs for p in builder.needed_blobs(image, plan)]
        try:
            self.stats.bytes_downloaded = builder.download(self.ref.repository, needed)
            if builder.options.server_overlay:
                self._ingest()
                flats = self._overlay_flats()
            else:
                flats = self._build_flats()
                self._ingest()
            with self.publisher.transaction():
                self._finish(flats)
        finally:
            builder.cache.discard([p.blob for p in needed])
        _log.info("image_converted", image=str(self.ref), layers=self.stats.layers_ingested)
        return self.stats

    def _ingest(self) -> None:
        for plan in self.plans:
            self.builder.ingest_layers(plan, self.stats, self.ingested)

    def _overlay_flats(self) -> list[Path | None]:
        """`cvmfs_server overlay` of the published layer trees: one publish per flat tree."""
        if self.builder.options.skip_flat:
            return [None] * len(self.images)
        return [self.builder.overlay_flat(i, p, self.stats) for i, p in self.pairs]

    def _build_flats(self) -> list[Path | None]:
        """Chains and flat trees: one transaction, or (gateway) one per `.flat/<xx>` lease so
        that several publishers build at once. No publish when everything exists."""
        if self.builder.options.skip_flat:
            return [None] * len(self.images)
        missing = [not flat_complete(self.builder.layout, i.config.digest) for i in self.images]
        if not any(missing):
            return [self.builder.layout.flat_dir(i.config.digest) for i in self.images]
        if not self.publisher.leases:
            with self.publisher.transaction():
                return [self._flat(image, plan) for image, plan in self.pairs]
        root = self.publisher.root
        if not (root / FLAT).is_dir():
            with self.publisher.transaction():
                (root / FLAT).mkdir(parents=True, exist_ok=True)
        flats = []
        for image, plan in self.pairs:
            with self.publisher.transaction(f"{FLAT}/{image.config.digest.prefix}"):
                flats.append(self._flat(image, plan))
        return flats

    def _flat(self, image: ResolvedImage, plan: list[LayerPlan]) -> Path | None:
        if self.builder.options.skip_flat:
            return None
        return self.builder.build_flat(image, plan, self.stats)

    def _finish(self, flats: list[Path | None]) -> None:
        """Layer metadata, catalog markers, links, the podman entry and image metadata."""
        for (image, plan), flat in zip(self.pairs, flats, strict=True):
            self.builder.write_layer_metadata(image, plan, self.ingested)
            if flat is not None:
                self.builder.complete_flat(image, flat)
        self.builder.top_markers()
        converted = [Converted(i, f) for i, f in zip(self.images, flats, strict=True)]
        variant = self.multi_arch and any(i.index is not None for i in self.images)
        podman = not self.skip_podman
        write_pointers(
            Layout(self.publisher.root), self.ref, converted, variant=variant, podman=podman
        )
