"""Which published images `ducc prune` unpublishes: those no wish names any more, or whose
tag the registry said definitely (404) is gone.

Prune is conservative: a registry it cannot reach prunes nothing under that wish, and an
image a refused recipe entry may name is kept. `ducc.repository.unpublish` carries it out.
"""

from __future__ import annotations

from collections.abc import Sequence

from ducc.oci.reference import Reference
from ducc.pipeline.expansion import expand_all
from ducc.pipeline.poller import PollStatus, poll
from ducc.recipe.model import RefusedWish, Wish
from ducc.registry.client import Registries
from ducc.repository.layout import Layout
from ducc.repository.recorded import recorded_digest, scan_records
from ducc.repository.unpublish import PrunePlan


def plan_prune(
    layout: Layout,
    wishes: Sequence[Wish],
    registries: Registries,
    refused: Sequence[RefusedWish] = (),
) -> PrunePlan:
    """Which recorded images no wish names any more, or whose tag the registry dropped. An
    image a refused recipe entry may name is kept: what that entry means is not known."""
    recorded = scan_records(layout.root).names  # DUCC's records of manifest lists too
    plan = PrunePlan()
    pairs = [(w.reference, w.ignore_errors) for w in wishes]
    wanted: dict[str, Reference] = {}
    unsure: list[Reference] = []
    for wish, expansion in zip(wishes, expand_all(registries, pairs, check=False), strict=True):
        if expansion.error is not None:
            unsure.append(wish.reference)
        wanted |= {ref.simple_name: ref for ref in expansion.images}
    gone = _vanished(layout, registries, [wanted[n] for n in recorded if n in wanted])
    for name in recorded:
        if any(_covers(ref, name) for ref in unsure):
            plan.kept_unsure.append(name)
        elif any(_may_name(r.input, name) for r in refused):
            plan.kept_refused.append(name)
        elif name not in wanted or name in gone:
            plan.remove.append(name)
    return plan


def _vanished(layout: Layout, registries: Registries, refs: list[Reference]) -> set[str]:
    """Wanted images whose tag the registry says (404) no longer exists."""
    results = poll(registries, refs, lambda ref: recorded_digest(layout, ref))
    return {r.reference.simple_name for r in results if r.status == PollStatus.VANISHED}


def _covers(ref: Reference, name: str) -> bool:
    """Whether the (possibly wildcard) wish `ref` could name the recorded image `name`."""
    repository, _, tag = name.rpartition(":")
    if repository != f"{ref.registry}/{ref.repository}":
        return False
    if ref.is_wildcard:
        return ref.tag_glob().matches(tag)
    return ref.simple_name == name


def _may_name(text: str, name: str) -> bool:
    """Whether an entry that could not be parsed may stand for the recorded image `name`:
    same `registry/repository`, ignoring case and Docker Hub's `library/`."""
    rest = text.split("://", 1)[-1].split("@", 1)[0]
    host, _, path = rest.partition("/")
    head, slash, last = path.rpartition("/")
    repository = head + slash + last.split(":", 1)[0]
    spellings = {f"{host}/{repository}".lower(), f"{host}/library/{repository}".lower()}
    return name.rpartition(":")[0].lower() in spellings
