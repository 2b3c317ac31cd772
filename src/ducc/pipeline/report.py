"""What a conversion run reports: each concrete image with the wish it came from, its
outcome and result, the run's report, and the `Recorder` results are handed to as they come
(the service's local state is one; the pipeline knows no more of it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ducc import log
from ducc.oci.reference import Reference
from ducc.pipeline.poller import PollResult, PollStatus
from ducc.recipe.model import RefusedWish, Wish

_log = log.get("convert")


class Outcome(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    ADOPTED = "adopted"  # recorded by DUCC, unchanged: its record rewritten, nothing converted
    UNCHANGED = "unchanged"
    VANISHED = "vanished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ImageResult:
    cvmfs_repo: str
    image: str
    wish: str
    outcome: Outcome
    digest: str | None = None
    old_digest: str | None = None
    error: str | None = None
    ignored: bool = False
    seconds: float = 0.0
    bytes_downloaded: int = 0
    layers_ingested: int = 0
    dry_run: bool = False
    converted: bool = False  # a conversion was attempted (its result is in `outcome`)
    chains_built: int = 0
    flat_method: str | None = None  # how the flat tree was built (products.FlatMethod)


@dataclass(slots=True)
class ConvertReport:
    results: list[ImageResult] = field(default_factory=list)
    publishes: int = 0
    ingests: int = 0

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def failures(self) -> list[ImageResult]:
        """Failures that count: those not covered by `ignoreErrors`."""
        return [r for r in self.results if r.outcome == Outcome.FAILED and not r.ignored]

    def as_json(self) -> dict[str, Any]:
        totals = {o.value: self.count(o) for o in Outcome}
        return {
            "totals": totals,
            "publishes": self.publishes,
            "ingests": self.ingests,
            "images": [asdict(r) for r in self.results],
        }


@dataclass(frozen=True, slots=True)
class Target:
    """A concrete image to keep in step, and the wish it came from."""

    reference: Reference
    wish: Wish


class Recorder(Protocol):
    """Keeps what each check found and the conversions (`ducc.service.state.State`)."""

    def record(self, results: Sequence[ImageResult]) -> None: ...


def refused_result(refused: RefusedWish) -> ImageResult:
    """A recipe entry that cannot be read, as the failed wish it is."""
    _log.error("wish_refused", wish=refused.input, error=refused.problem)
    return ImageResult(
        cvmfs_repo=str(refused.cvmfs_repo),
        image=refused.input,
        wish=refused.input,
        outcome=Outcome.FAILED,
        error=refused.problem,
        ignored=refused.ignore_errors,
    )


def passive_outcome(result: PollResult) -> Outcome:
    return {
        PollStatus.VANISHED: Outcome.VANISHED,
        PollStatus.FAILED: Outcome.FAILED,
    }.get(result.status, Outcome.UNCHANGED)


def result_of(target: Target, result: PollResult, outcome: Outcome, **extra: Any) -> ImageResult:
    error = str(result.error) if outcome == Outcome.FAILED and result.error else None
    return ImageResult(
        cvmfs_repo=str(target.wish.cvmfs_repo),
        image=str(target.reference),
        wish=target.wish.input,
        outcome=outcome,
        digest=str(result.new) if result.new else None,
        old_digest=str(result.old) if result.old else None,
        error=error,
        ignored=outcome == Outcome.FAILED and target.wish.ignore_errors,
        **extra,
    )


def failed_result(
    wish: Wish, image: str, error: BaseException, result: PollResult | None = None
) -> ImageResult:
    _log.error("image_failed", image=image, error=str(error), ignored=wish.ignore_errors)
    return ImageResult(
        cvmfs_repo=str(wish.cvmfs_repo),
        image=image,
        wish=wish.input,
        outcome=Outcome.FAILED,
        digest=str(result.new) if result and result.new else None,
        old_digest=str(result.old) if result and result.old else None,
        error=str(error),
        ignored=wish.ignore_errors,
    )
