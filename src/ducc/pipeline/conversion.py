"""One image's conversion: download what is missing, then per platform the layers, chains
and flat tree (each product its own publish on CernVM-FS), then layer metadata, links, the
podman entry and the image metadata in one final transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ducc import log
from ducc.oci.digest import Digest
from ducc.oci.reference import Reference
from ducc.pipeline.builder import BuildStats, ImageBuilder
from ducc.publish.base import Ingested, Publisher
from ducc.registry.manifests import ResolvedImage
from ducc.repository.layout import Layout
from ducc.repository.pointers import Converted, write_pointers
from ducc.repository.products import LayerPlan, plan_layers

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
    ingested: dict[Digest, Ingested] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.plans = [plan_layers(image) for image in self.images]

    @property
    def pairs(self) -> list[tuple[ResolvedImage, list[LayerPlan]]]:
        return list(zip(self.images, self.plans, strict=True))

    def run(self) -> BuildStats:
        """Blobs, then each platform's products bottom to top, then the final step."""
        builder = self.builder
        needed = [p for image, plan in self.pairs for p in builder.needed_blobs(image, plan)]
        try:
            self.stats.bytes_downloaded = builder.download(self.ref.repository, needed)
            flats = [builder.build(i, p, self.stats, self.ingested) for i, p in self.pairs]
            with self.publisher.transaction():
                self._finish(flats)
        finally:
            builder.cache.discard([p.blob for p in needed])
        _log.info(
            "image_converted",
            image=str(self.ref),
            layers=self.stats.layers_ingested,
            chains=self.stats.chains_built,
            flat_method=self.stats.flat_method,
        )
        return self.stats

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
