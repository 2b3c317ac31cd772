"""Per-image schedule: interval with jitter, exponential backoff, triggers, dropped images."""

from __future__ import annotations

import random

from ducc.oci.reference import parse_reference
from ducc.pipeline.report import Target
from ducc.recipe.model import CvmfsRepo, Wish
from ducc.service.schedule import Schedule, key_of


def target(text: str) -> Target:
    ref = parse_reference(text)
    wish = Wish("r.yaml", 1, 0, text, ref, CvmfsRepo("r"))
    return Target(ref, wish)


A, B = target("quay.io/a/b:1"), target("quay.io/a/c:1")


def test_new_images_are_due_now_and_then_every_interval_with_jitter() -> None:
    schedule = Schedule(100, jitter=0.1, rng=random.Random(1))
    schedule.set_targets([A, B], now=0)
    assert schedule.due(0) == [A, B]
    times = [schedule.done(key_of(A), "unchanged", failed=False, now=0) for _ in range(50)]
    assert all(t is not None and 90 <= t <= 110 for t in times)
    assert len({round(t or 0, 3) for t in times}) > 10  # spread, not one instant


def test_failures_back_off_exponentially_up_to_the_cap() -> None:
    schedule = Schedule(10, jitter=0, max_backoff=50)
    schedule.set_targets([A], now=0)
    delays = [schedule.done(key_of(A), "failed", failed=True, now=0) for _ in range(5)]
    assert delays == [10, 20, 40, 50, 50]
    assert schedule.done(key_of(A), "unchanged", failed=False, now=0) == 10


def test_trigger_add_and_drop() -> None:
    schedule = Schedule(100, jitter=0)
    schedule.set_targets([A, B], now=0)
    for t in (A, B):
        schedule.done(key_of(t), "unchanged", failed=False, now=0)
    assert schedule.due(1) == []
    assert schedule.trigger(lambda t: t is B, now=1) == [B]
    assert schedule.due(1) == [B]
    extra = target("quay.io/a/b:2")
    schedule.add(extra, now=2)
    assert extra in schedule.due(2)
    assert schedule.set_targets([A], now=3) == [key_of(B), key_of(extra)]
    assert len(schedule) == 1
    assert schedule.statuses() == {"unchanged": 1}
