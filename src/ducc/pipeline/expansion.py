"""Wishes to concrete images: wildcards expanded against tag lists, plain tags checked.

Each wish succeeds or fails on its own; a failure carries the error (the registry named in
it) and whether the recipe's `ignoreErrors` covers the wish.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ducc import log
from ducc.errors import DuccError, Interrupted
from ducc.oci.reference import Reference
from ducc.registry.client import Registries
from ducc.registry.manifests import head_digest
from ducc.registry.tags import expand


@dataclass(frozen=True, slots=True)
class Expansion:
    """What one wish (or one image given directly) stands for."""

    reference: Reference
    images: tuple[Reference, ...] = ()
    error: DuccError | None = None
    ignore_errors: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None


def expand_one(
    registries: Registries, ref: Reference, *, check: bool = True, ignore_errors: bool = False
) -> Expansion:
    """Expand `ref`; with `check`, a concrete reference must exist (one HEAD)."""
    client = registries.client(ref)
    try:
        images = expand(client, ref)
        if check and not ref.is_wildcard:
            head_digest(client, ref)
    except Interrupted:
        raise
    except DuccError as exc:
        log.get("expand").warning("expand_failed", image=str(ref), error=str(exc))
        return Expansion(ref, (), exc, ignore_errors)
    return Expansion(ref, tuple(images), None, ignore_errors)


def expand_all(
    registries: Registries,
    refs: Sequence[tuple[Reference, bool]],
    *,
    check: bool = True,
    concurrency: int = 8,
) -> list[Expansion]:
    """Expand every (reference, ignore_errors) pair, in order, several at a time."""

    def one(item: tuple[Reference, bool]) -> Expansion:
        return expand_one(registries, item[0], check=check, ignore_errors=item[1])

    if concurrency <= 1 or len(refs) <= 1:
        return [one(item) for item in refs]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="expand") as pool:
        return list(pool.map(one, refs))
