"""Lanes: the items of one lane never wait for another lane's, a lane works ahead of the
consumer by a bounded number of items, failures reach the consumer."""

from __future__ import annotations

import threading

import pytest

from ducc.pipeline.lanes import run_lanes

PATIENCE = 10.0  # seconds a test waits before it calls a lane stuck


def test_a_stalled_lane_does_not_hold_up_the_others() -> None:
    released = threading.Event()

    def prepare(item: str, _polled: None) -> str:
        if item.startswith("slow"):
            assert released.wait(PATIENCE), "the fast lane waited for the slow one"
        return item

    got = []
    for ready in run_lanes(
        ["slow-1", "fast-1", "fast-2"], lambda i: i.split("-")[0], lambda _: None, prepare
    ):
        got.append(ready.result)
        if ready.result == "fast-2":
            released.set()  # only once both fast items are through
    assert got == ["fast-1", "fast-2", "slow-1"]


def test_a_lane_works_ahead_by_a_bounded_number_of_items() -> None:
    prepared: list[int] = []
    seen_ahead = []

    def prepare(item: int, _polled: None) -> int:
        prepared.append(item)
        return item

    for ready in run_lanes(list(range(6)), lambda _: "one", lambda _: None, prepare, ahead=2):
        threading.Event().wait(0.05)  # a slow consumer
        seen_ahead.append(len(prepared) - 1 - (ready.result or 0))
    assert max(seen_ahead) <= 1  # at most one more item prepared than handed over


def test_an_items_failure_is_handed_to_the_consumer() -> None:
    def prepare(item: str, _polled: None) -> str:
        raise OSError(f"disk full for {item}")

    (ready,) = list(run_lanes(["a"], lambda _: "one", lambda _: None, prepare))
    assert isinstance(ready.error, OSError)
    assert ready.result is None


def test_each_item_is_polled_before_it_is_prepared() -> None:
    polled: list[str] = []

    def poll(item: str) -> str:
        polled.append(item)
        return f"polled {item}"

    results = {r.item: r.result for r in run_lanes(["a", "b"], lambda i: i, poll, _both)}
    assert results == {"a": "a: polled a", "b": "b: polled b"}
    assert sorted(polled) == ["a", "b"]


def _both(item: str, polled: str) -> str:
    return f"{item}: {polled}"


@pytest.mark.parametrize("ahead", [1, 3])
def test_nothing_is_lost_or_doubled(ahead: int) -> None:
    items = [f"{lane}-{n}" for lane in "abc" for n in range(5)]
    got = [r.result for r in run_lanes(items, lambda i: i[0], lambda _: None, _first, ahead=ahead)]
    assert sorted(got, key=str) == sorted(items)


def _first(item: str, _polled: None) -> str:
    return item
