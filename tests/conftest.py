"""Fixtures shared by every test: a real local registry (session-wide); `root` markers."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from tests.support import registry as registry_support
from tests.support.registry import LocalRegistry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    """Debian's docker-registry on a free 127.0.0.1 port, for the whole session."""
    if not registry_support.available():
        pytest.skip("docker-registry is not installed (scripts/setup installs it)")
    server = LocalRegistry(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Commands configure logging to the stderr pytest captures for one test; undo it after."""
    yield
    structlog.reset_defaults()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked `root` skip cleanly when not running as root."""
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)
