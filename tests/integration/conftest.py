"""Fixtures of the integration tests that more than one file uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.registry import LocalRegistry


@pytest.fixture
def proxy(registry: LocalRegistry) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's registry, stopped after the test."""
    server = FaultProxy(registry.url).start()
    try:
        yield server
    finally:
        server.stop()
