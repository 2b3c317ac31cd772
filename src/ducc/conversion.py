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
from ducc.products import BuildStats, ImageBuilder, LayerPlan, plan_layers
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
        builder = self.builder
        needed = [p for image, plan in self.pairs for p in builder.needed_blobs(image, plan)]
        try:
            self.stats.bytes_downloaded = builder.download(self.ref.repository, needed)
            for plan in self.plans:
                self.ingested.update(builder.ingest_layers(plan, self.stats))
            if self.publisher.leases:
                self._publish_under_leases()
            else:
                with self.publisher.transaction():
                    self._finish([self._flat(image, plan) for image, plan in self.pairs])
        finally:
            builder.cache.discard([p.blob for p in needed])
        _log.info("image_converted", image=str(self.ref), layers=self.stats.layers_ingested)
        return self.stats

    def _publish_under_leases(self) -> None:
        """Gateway mode: each flat tree under its `.flat/<xx>` lease (several publishers can
        build at once), then the short shared part under the repository's lease."""
        root = self.publisher.root
        if not (root / FLAT).is_dir():
            with self.publisher.transaction():
                (root / FLAT).mkdir(parents=True, exist_ok=True)
        flats = []
        for image, plan in self.pairs:
            with self.publisher.transaction(f"{FLAT}/{image.config.digest.prefix}"):
                flats.append(self._flat(image, plan))
        with self.publisher.transaction():
            self._finish(flats)

    def _flat(self, image: ResolvedImage, plan: list[LayerPlan]) -> Path | None:
        if self.builder.options.skip_flat:
            return None
        return self.builder.build_flat(image, plan, self.stats)

    def _finish(self, flats: list[Path | None]) -> None:
        """Layer metadata, catalog markers, links, the podman entry and image metadata."""
        for image, plan in self.pairs:
            self.builder.write_layer_metadata(image, plan, self.ingested)
        self.builder.top_markers()
        converted = [Converted(i, f) for i, f in zip(self.images, flats, strict=True)]
        variant = self.multi_arch and any(i.index is not None for i in self.images)
        podman = not self.skip_podman
        write_pointers(
            Layout(self.publisher.root), self.ref, converted, variant=variant, podman=podman
        )
