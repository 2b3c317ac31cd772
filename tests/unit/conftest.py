"""Fixtures for the HTTP unit tests: a `responses` mock, a fake clock and recorded sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import responses

from ducc.registry.client import Registries
from ducc.registry.credentials import CredentialStore
from ducc.registry.settings import RegistrySettings


@dataclass
class FakeTime:
    """A monotonic clock that only moves when told to, or when something sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


MakeRegistries = Callable[..., Registries]


@pytest.fixture
def make_registries(fake_time: FakeTime) -> MakeRegistries:
    """Registries whose retries sleep on the fake clock (no test ever really waits)."""

    def make(credentials: CredentialStore | None = None, **settings: object) -> Registries:
        return Registries(
            RegistrySettings(**settings),  # type: ignore[arg-type]
            credentials or CredentialStore(),
            sleep=fake_time.sleep,
            clock=fake_time,
        )

    return make
