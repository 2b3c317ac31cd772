"""`ducc convert`: expand the wishes, poll them, convert what is new or changed, publish.

Each registry is a lane (`lanes.py`): its images are polled, resolved and downloaded in a
thread of their own, within the image's deadline, so a registry that stalls holds up only
its own images; the publisher takes the images as their blobs arrive. One image's
conversion is `conversion.ImageJob` (chains and flat tree, new layers, then links, podman
entry and metadata). A failing image is reported and the others go on; only an
interruption stops the run. The repository is held (locked) while it is converted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ducc import log
from ducc.errors import DuccError, InputError, Interrupted
from ducc.metrics import METRICS
from ducc.oci.digest import Digest
from ducc.oci.platform import Platform
from ducc.oci.reference import Reference
from ducc.pipeline.adopt import Adoption, adopt, plan_adoption
from ducc.pipeline.blobcache import BlobCache
from ducc.pipeline.builder import BuildOptions, BuildStats, ImageBuilder
from ducc.pipeline.conversion import ImageJob
from ducc.pipeline.expansion import expand_all
from ducc.pipeline.lanes import Ready, run_lanes
from ducc.pipeline.poller import PollResult, PollStatus, poll, poll_one
from ducc.pipeline.report import (
    ConvertReport,
    ImageResult,
    Outcome,
    Recorder,
    Target,
    failed_result,
    passive_outcome,
    refused_result,
    result_of,
)
from ducc.publish.base import Publisher
from ducc.recipe.model import CvmfsRepo, Wish, Wishlist
from ducc.registry.client import Registries, RegistryClient
from ducc.registry.manifests import ResolvedImage, resolve
from ducc.repository.layout import Layout
from ducc.repository.pointers import published_ok
from ducc.repository.products import LayerPlan, plan_layers
from ducc.repository.recorded import recorded_digest
from ducc.repository.repair import repair_images

_log = log.get("convert")


@dataclass(frozen=True, slots=True)
class ConvertOptions:
    build: BuildOptions = field(default_factory=BuildOptions)
    multi_arch: bool = False
    platform: Platform | None = None
    convert_again: bool = False
    skip_podman: bool = False
    dry_run: bool = False
    shard: tuple[int, int] | None = None  # (index, count)
    wait: bool = False
    poll_concurrency: int = 8
    image_deadline: float = 3600.0  # seconds of registry traffic one image may take
    repair: bool = False  # check products deeply first and rebuild what is damaged


@dataclass(frozen=True, slots=True)
class Prepared:
    """An image polled in its lane and, when it needs converting, resolved and downloaded."""

    polled: PollResult
    outcome: Outcome | None  # None: nothing to do
    started: float
    client: RegistryClient | None = None
    images: tuple[ResolvedImage, ...] = ()
    blobs: tuple[LayerPlan, ...] = ()
    downloaded: int = 0  # bytes
    error: DuccError | OSError | None = None
    adoption: Adoption | None = None  # an image DUCC recorded, taken over as it is


PublisherFactory = Callable[[CvmfsRepo], Publisher]


def in_shard(ref: Reference, shard: tuple[int, int] | None) -> bool:
    """Deterministic split of images between `N` publishers (`--shard I/N`)."""
    if shard is None:
        return True
    index, count = shard
    value = int.from_bytes(hashlib.sha256(ref.simple_name.encode()).digest()[:8], "big")
    return value % count == index


class Converter:
    def __init__(
        self,
        registries: Registries,
        publisher_for: PublisherFactory,
        cache_dir: Path,
        options: ConvertOptions,
        recorder: Recorder | None = None,
    ) -> None:
        self.registries = registries
        self.publisher_for = publisher_for
        self.cache = BlobCache(cache_dir)
        self.options = options
        self.recorder = recorder

    def run(self, wishlist: Wishlist) -> ConvertReport:
        """Expand and process every wish of every recipe, repository by repository."""
        report = ConvertReport()
        refused = [refused_result(r) for r in wishlist.refused]
        self.record(refused)
        report.results += refused
        for repo, wishes in by_repo(wishlist.wishes).items():
            targets, failures = self.expand(wishes)
            self.record(failures)
            report.results += failures
            self.process(repo, targets, report)
        if not report.failures:
            METRICS.set("ducc_last_success_timestamp_seconds", time.time())
        return report

    def expand(self, wishes: Sequence[Wish]) -> tuple[list[Target], list[ImageResult]]:
        """Concrete images of `wishes` (this shard's only), and the wishes that failed."""
        pairs = [(w.reference, w.ignore_errors) for w in wishes]
        targets: list[Target] = []
        failures: list[ImageResult] = []
        for wish, expansion in zip(
            wishes, expand_all(self.registries, pairs, check=False), strict=True
        ):
            if expansion.error is not None:
                failures.append(failed_result(wish, str(wish.reference), expansion.error))
                continue
            targets += [
                Target(r, wish) for r in expansion.images if in_shard(r, self.options.shard)
            ]
        return targets, failures

    def process(self, repo: CvmfsRepo, targets: list[Target], report: ConvertReport) -> None:
        """Poll `targets` of one repository and convert what needs it, holding the repository."""
        publisher = self.publisher_for(repo)
        layout = Layout(publisher.root)
        if self.options.dry_run:
            report.results += [self._preview(layout, t, r) for t, r in self._poll(layout, targets)]
            return
        if self.options.build.server_overlay and not publisher.overlay_available():
            raise InputError(
                "--server-overlay: this cvmfs_server has no `overlay` command (CernVM-FS 2.11 "
                "and the 2.12 development branch have none)",
                hint="leave it out: flat trees are then template copies of their chains",
            )
        with publisher.session(wait=self.options.wait), self.cache.in_use():
            damaged = self._repair(publisher, targets)
            done: dict[int, ImageResult] = {}
            for ready in run_lanes(
                list(enumerate(targets)),
                lambda item: (item[1].reference.scheme, item[1].reference.api_host),
                lambda item: self._poll_one(layout, item[1]),
                lambda item, polled: self._prepare(publisher, layout, item[1], polled, damaged),
                holds=lambda prepared: prepared.outcome is not None,
                pollers=self.options.poll_concurrency,
            ):
                result = self._publish(publisher, ready)
                self.record([result])
                done[ready.item[0]] = result
            report.results += [done[n] for n in sorted(done)]
        report.publishes += publisher.publishes
        report.ingests += publisher.ingests
        METRICS.inc("ducc_publishes_total", publisher.publishes)

    def record(self, results: list[ImageResult]) -> None:
        """Hand what each check found, and the conversions, to the recorder (if any)."""
        if self.recorder is not None:
            self.recorder.record(results)

    def _poll(self, layout: Layout, targets: list[Target]) -> list[tuple[Target, PollResult]]:
        refs = [t.reference for t in targets]
        recorded = lambda ref: recorded_digest(layout, ref)  # noqa: E731 - one-line adapter
        results = poll(self.registries, refs, recorded, concurrency=self.options.poll_concurrency)
        return list(zip(targets, results, strict=True))

    def _wanted(self, layout: Layout, target: Target, result: PollResult) -> Outcome | None:
        """What converting would make of this image, or None when there is nothing to do."""
        if result.status == PollStatus.NEW:
            return Outcome.ADDED
        if result.status == PollStatus.CHANGED:
            return Outcome.UPDATED
        if result.status != PollStatus.UNCHANGED:
            return None
        skip_flat = self.options.build.skip_flat
        if self.options.convert_again or not published_ok(
            layout, target.reference, skip_flat=skip_flat
        ):
            return Outcome.UPDATED
        return None

    def _preview(self, layout: Layout, target: Target, result: PollResult) -> ImageResult:
        outcome = self._wanted(layout, target, result) or passive_outcome(result)
        if outcome in (Outcome.ADDED, Outcome.UPDATED):
            try:
                if self._adoption(layout, target.reference, result.new) is not None:
                    outcome = Outcome.ADOPTED
            except DuccError as exc:
                _log.warning("adoption_check_failed", image=str(target.reference), error=str(exc))
        return result_of(target, result, outcome, dry_run=True)

    def _adoption(self, layout: Layout, ref: Reference, polled: Digest | None) -> Adoption | None:
        """An image DUCC recorded whose config is unchanged: taken over as it is."""
        if self.options.convert_again:
            return None
        return plan_adoption(
            layout,
            self.registries.client(ref),
            ref,
            polled,
            platform=self.options.platform,
            multi_arch=self.options.multi_arch,
            skip_flat=self.options.build.skip_flat,
        )

    def _repair(self, publisher: Publisher, targets: list[Target]) -> set[str]:
        """With `repair`: the images whose products were damaged (now removed), by name."""
        if not self.options.repair:
            return set()
        return repair_images(publisher, [t.reference for t in targets])

    def _poll_one(self, layout: Layout, target: Target) -> PollResult:
        return poll_one(self.registries, target.reference, lambda r: recorded_digest(layout, r))

    def _prepare(
        self,
        publisher: Publisher,
        layout: Layout,
        target: Target,
        polled: PollResult,
        damaged: set[str],
    ) -> Prepared:
        """In the image's lane: what to do, and for a conversion the resolved images and
        their blobs (or, for an image DUCC recorded, its adoption), all within the image's
        deadline."""
        started = time.monotonic()
        outcome = self._wanted(layout, target, polled)
        if outcome is None and target.reference.simple_name in damaged:
            outcome = Outcome.UPDATED
        if outcome is None:
            return Prepared(polled, None, started)
        ref = target.reference
        client = self.registries.client(ref).bounded(self.options.image_deadline)
        options = self.options
        try:
            if outcome in (Outcome.ADDED, Outcome.UPDATED) and ref.simple_name not in damaged:
                adoption = self._adoption(layout, ref, polled.new)
                if adoption is not None:
                    return Prepared(polled, Outcome.ADOPTED, started, client, adoption=adoption)
            images = resolve(
                client,
                ref,
                platform=options.platform,
                multi_arch=options.multi_arch,
                pinned=polled.new,
            )
            builder = ImageBuilder(publisher, client, self.cache, options.build)
            blobs = [p for i in images for p in builder.needed_blobs(i, plan_layers(i))]
            downloaded = builder.download(ref.repository, blobs)
        except Interrupted:
            raise
        except (DuccError, OSError) as exc:
            return Prepared(polled, outcome, started, client, error=exc)
        return Prepared(polled, outcome, started, client, tuple(images), tuple(blobs), downloaded)

    def _publish(
        self, publisher: Publisher, ready: Ready[tuple[int, Target], Prepared]
    ) -> ImageResult:
        """Build and publish an image its lane prepared; the result to report."""
        target, prepared = ready.item[1], ready.result
        if ready.error is not None or prepared is None:
            raise ready.error or RuntimeError("a lane handed over nothing")
        polled, outcome = prepared.polled, prepared.outcome
        if outcome is None:
            return result_of(target, polled, passive_outcome(polled))
        try:
            if prepared.error is not None:
                raise prepared.error
            if prepared.adoption is not None:
                adopt(publisher, prepared.adoption)
                stats = BuildStats()
            else:
                stats = self._build(publisher, target.reference, prepared)
        except Interrupted:
            raise
        except (DuccError, OSError) as exc:
            METRICS.inc("ducc_conversions_total", result="failed")
            failure = failed_result(target.wish, str(target.reference), exc, polled)
            return replace(failure, converted=True, seconds=time.monotonic() - prepared.started)
        finally:
            self.cache.discard([p.blob for p in prepared.blobs])
        METRICS.inc("ducc_conversions_total", result=outcome.value)
        return result_of(
            target,
            polled,
            outcome,
            converted=True,
            seconds=time.monotonic() - prepared.started,
            bytes_downloaded=stats.bytes_downloaded,
            layers_ingested=stats.layers_ingested,
            chains_built=stats.chains_built,
            flat_method=stats.flat_method,
        )

    def _build(self, publisher: Publisher, ref: Reference, prepared: Prepared) -> BuildStats:
        """Chains, flat trees, layers and the final step (blobs a lane did not fetch, e.g.
        after another image discarded a shared one, are fetched here)."""
        options = self.options
        client = prepared.client or self.registries.client(ref)
        builder = ImageBuilder(publisher, client, self.cache, options.build)
        images = list(prepared.images)
        job = ImageJob(publisher, builder, ref, images, options.multi_arch, options.skip_podman)
        stats = job.run()
        stats.bytes_downloaded += prepared.downloaded
        return stats


def by_repo(wishes: list[Wish]) -> dict[CvmfsRepo, list[Wish]]:
    groups: dict[CvmfsRepo, list[Wish]] = {}
    for wish in wishes:
        groups.setdefault(wish.cvmfs_repo, []).append(wish)
    return groups
