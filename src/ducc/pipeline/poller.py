"""The change poller: which concrete images are new, changed, unchanged, vanished or failed.

Per image one `HEAD` of the tag gives `Docker-Content-Digest` (Docker Hub does not count it
against pull limits); a GET happens only where a registry omits the header. The caller says
what is recorded (the repository's own `.metadata` is the truth), so no local state is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum

from ducc import log
from ducc.errors import DuccError, Interrupted, NotFound
from ducc.oci.digest import Digest
from ducc.oci.reference import Reference
from ducc.registry.client import Registries
from ducc.registry.faults import NOT_FOUND_CODES
from ducc.registry.manifests import get_manifest, head_digest


class PollStatus(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    VANISHED = "vanished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class PollResult:
    reference: Reference
    status: PollStatus
    old: Digest | None = None
    new: Digest | None = None
    error: DuccError | None = None


Recorded = Callable[[Reference], Digest | None]


def poll(
    registries: Registries,
    images: Sequence[Reference],
    recorded: Recorded,
    *,
    concurrency: int = 8,
) -> list[PollResult]:
    """One result per image, in the order given; no exception escapes for a single image."""
    if concurrency <= 1 or len(images) <= 1:
        return [poll_one(registries, ref, recorded) for ref in images]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="poll") as pool:
        return list(pool.map(lambda ref: poll_one(registries, ref, recorded), images))


def poll_one(registries: Registries, ref: Reference, recorded: Recorded) -> PollResult:
    old: Digest | None = None
    try:
        old = recorded(ref)
        new = current_digest(registries, ref)
    except NotFound as exc:
        gone = _tag_is_gone(exc) and old is not None
        result = PollResult(ref, PollStatus.VANISHED if gone else PollStatus.FAILED, old, None, exc)
    except Interrupted:
        raise
    except DuccError as exc:
        result = PollResult(ref, PollStatus.FAILED, old, None, exc)
    else:
        result = PollResult(ref, _status(old, new), old, new)
    _log(result)
    return result


def current_digest(registries: Registries, ref: Reference) -> Digest:
    """What the registry says `ref` points at now: HEAD, or GET when HEAD names no digest."""
    client = registries.client(ref)
    digest = head_digest(client, ref)
    if digest is not None:
        return digest
    log.get("poller").debug("head_without_digest", registry=client.api_host, image=str(ref))
    return get_manifest(client, ref.repository, ref.pull_reference, expected=ref.digest).digest


def _tag_is_gone(error: NotFound) -> bool:
    """The registry said so explicitly: 404 (HEAD has no body) or a not-found error code."""
    return error.status == 404 and (error.code is None or error.code in NOT_FOUND_CODES)


def _status(old: Digest | None, new: Digest) -> PollStatus:
    if old is None:
        return PollStatus.NEW
    return PollStatus.UNCHANGED if old == new else PollStatus.CHANGED


def _log(result: PollResult) -> None:
    logger = log.get("poller").bind(image=str(result.reference), status=str(result.status))
    if result.status is PollStatus.FAILED:
        logger.warning("poll_failed", error=str(result.error))
    elif result.status is PollStatus.UNCHANGED:
        logger.debug("poll_result", digest=str(result.new))
    else:
        logger.info(
            "poll_result",
            old=str(result.old) if result.old else None,
            new=str(result.new) if result.new else None,
        )
