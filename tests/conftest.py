"""Fixtures shared by every test: a real local registry (session-wide), the fake cvmfs_server,
and `root` markers that skip cleanly for other users."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import structlog

from tests.fakes.fixture import fake_cvmfs, fake_cvmfs_modes, fake_cvmfs_sweep
from tests.support import real_cvmfs as real_support
from tests.support import registry as registry_support
from tests.support.real_cvmfs import RealCvmfs
from tests.support.registry import LocalRegistry

__all__ = ["fake_cvmfs", "fake_cvmfs_modes", "fake_cvmfs_sweep", "registry"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `root` skip cleanly for other users."""
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root")


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


@pytest.fixture(scope="session")
def real_cvmfs_server() -> str:
    """The real `cvmfs_server` of this machine (skips with the reason where there is none);
    test repositories left by killed runs are removed first."""
    reason = real_support.missing()
    if reason is not None:
        pytest.skip(f"no real CernVM-FS stratum 0: {reason}")
    server = real_support.server_executable()
    assert server is not None
    real_support.sweep(server)
    return server


@pytest.fixture(scope="module")
def real_cvmfs(request: pytest.FixtureRequest, real_cvmfs_server: str) -> Iterator[RealCvmfs]:
    """A fresh repository `ducc-test-<module>-<random>.local` of the real stratum 0 for one
    test module, removed (`rmfs -f`) afterwards."""
    yield from real_support.repository(request.module.__name__.rpartition(".")[2])


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Commands configure logging to the stderr pytest captures for one test; undo it after."""
    yield
    structlog.reset_defaults()
