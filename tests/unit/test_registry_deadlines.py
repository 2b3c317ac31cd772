"""A request's deadline covers its attempts and back-offs, not the waits a registry asks
for (those have `max_wait`, in all); a registry that used up a deadline is left alone for a
while; every body keeps a minimum rate. Time is the fake clock of `conftest.py`."""

from __future__ import annotations

import pytest
import responses

from ducc.errors import DeadlineExceeded, RateLimited, RegistryStalled, TransferTooSlow
from ducc.registry.pace import Pace
from tests.support.fake_registry import FakeRegistry, error_body
from tests.unit.conftest import FakeTime, MakeRegistries
from tests.unit.test_registry_client import MANIFEST, URL, client_for, get


def unavailable(rsps: responses.RequestsMock, **headers: str) -> None:
    rsps.add("GET", URL, status=503, body=error_body("UNAVAILABLE", "later"), headers=headers)


def test_retries_end_at_the_deadline(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps)
    unavailable(rsps)
    client = client_for(make_registries, deadline=10.0, backoff_initial=4.0, retry_attempts=50)
    with pytest.raises(DeadlineExceeded, match="deadline of 10 s"):
        get(client)
    assert sum(fake_time.sleeps) == pytest.approx(10.0)  # back-offs cut to what was left
    assert len(fake.calls("GET", MANIFEST)) <= 3  # not 50 attempts


def test_waits_the_registry_asks_for_do_not_count_against_the_deadline(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps)
    rsps.add("GET", URL, status=429, headers={"Retry-After": "30"})
    rsps.add("GET", URL, body=b"{}")
    assert get(client_for(make_registries, deadline=10.0)) == b"{}"
    assert fake_time.sleeps == [30.0]
    assert len(fake.calls("GET", MANIFEST)) == 2


def test_waits_the_registry_asks_for_are_bounded_in_all(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, status=429, headers={"Retry-After": "4"})
    client = client_for(make_registries, max_wait=10.0, retry_attempts=50, deadline=1000.0)
    with pytest.raises(RateLimited):
        get(client)
    assert fake_time.sleeps == [4.0, 4.0]  # a third wait would pass max_wait


def test_a_registry_that_used_up_a_deadline_is_left_alone_for_one(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps)
    unavailable(rsps)
    client = client_for(make_registries, deadline=10.0, backoff_initial=4.0)
    with pytest.raises(DeadlineExceeded):
        get(client)
    asked = len(fake.calls("GET", MANIFEST))
    with pytest.raises(RegistryStalled, match="not asked"):
        get(client)
    assert len(fake.calls("GET", MANIFEST)) == asked  # failed at once, nothing sent
    fake_time.now += 11
    rsps.replace("GET", URL, body=b"{}")
    assert get(client) == b"{}"  # asked again after the cool-down


def test_an_image_deadline_bounds_its_requests_and_does_not_stall_the_registry(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    unavailable(rsps)
    client = client_for(make_registries, deadline=100.0, backoff_initial=4.0, retry_attempts=50)
    image = client.bounded(10.0)
    with pytest.raises(DeadlineExceeded, match="the image's deadline") as info:
        get(image)
    assert info.value.image
    rsps.replace("GET", URL, body=b"{}")
    assert get(client) == b"{}"  # other images of the registry go on


def test_a_body_below_the_minimum_rate_fails(fake_time: FakeTime) -> None:
    pace = Pace("blob x", min_rate=100, window=10, clock=fake_time)
    for _ in range(9):
        fake_time.now += 1
        pace.arrived(50)  # 50 bytes/s: below 100, but the window is not over yet
    fake_time.now += 1
    with pytest.raises(TransferTooSlow, match="500 bytes in 10 s"):
        pace.arrived(50)


def test_a_body_at_the_minimum_rate_goes_on_and_zero_turns_the_check_off(
    fake_time: FakeTime,
) -> None:
    steady = Pace("blob x", min_rate=100, window=10, clock=fake_time)
    off = Pace("blob y", min_rate=0, window=10, clock=fake_time)
    for _ in range(100):
        fake_time.now += 1
        steady.arrived(100)
        off.arrived(1)
    assert (steady.total, off.total) == (10_000, 100)


def test_a_body_past_its_deadline_fails(fake_time: FakeTime) -> None:
    pace = Pace("GET /v2/", min_rate=0, window=10, deadline=fake_time.now + 5, clock=fake_time)
    pace.arrived(10)
    fake_time.now += 6
    with pytest.raises(DeadlineExceeded, match="not complete by its deadline"):
        pace.arrived(10)
