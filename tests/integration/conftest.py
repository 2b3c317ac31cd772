"""Fixtures of the integration tests that more than one file uses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.loop import Loops
from tests.support.registry import LocalRegistry


@pytest.fixture
def proxy(registry: LocalRegistry) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of the session's registry, stopped after the test."""
    server = FaultProxy(registry.url).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    """Starts `ducc loop` processes in `tmp_path`; those still running are killed after."""
    started = Loops(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()
