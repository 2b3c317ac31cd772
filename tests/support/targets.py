"""Where an integration test publishes: a plain directory (`dir`), the fake cvmfs_server
(`cvmfs`), or a real CernVM-FS stratum 0 (`real`, a subdirectory of the test module's
repository). The same test runs against each; `calls()` are the `cvmfs_server` calls with
what each publish processed (the fake's own log, or the meter in front of the real one).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support import meter
from tests.support.ducc import Run, ducc
from tests.support.real_cvmfs import RealCvmfs

KINDS = ["dir", "cvmfs", pytest.param("real", marks=pytest.mark.real_cvmfs)]


class Metered(Protocol):
    """A `cvmfs_server` call, as the fake or the meter recorded it."""

    @property
    def verb(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def template(self) -> bool: ...

    @property
    def upper_files(self) -> int: ...

    @property
    def upper_bytes(self) -> int: ...


@dataclass
class Target:
    """The recipe's `cvmfs_repo`, ducc's options and environment, the tree to inspect."""

    kind: str
    repo: str
    root: Path
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    fake: FakeCvmfs | None = None
    real: RealCvmfs | None = None
    meter_log: Path | None = None

    def convert(self, recipe: Path, *extra: str, env: dict[str, str] | None = None) -> Run:
        return ducc(
            "convert", recipe, "--json", *self.args, *extra, env={**self.env, **(env or {})}
        )

    def calls(self) -> Sequence[Metered]:
        if self.fake is not None:
            return self.fake.calls()
        if self.meter_log is not None:
            return meter.calls(self.meter_log)
        return []

    def in_transaction(self) -> bool:
        if self.fake is not None:
            return bool(self.fake.transactions())
        return self.real is not None and self.real.in_transaction()


def make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    state = ["--state-dir", str(tmp_path / "state")]
    if kind == "dir":
        root = tmp_path / "repo"
        return Target(
            "dir", "local.test", root, ["--publisher", "dir", "--root", str(root), *state]
        )
    if os.geteuid() != 0:
        pytest.skip("CernVM-FS repositories are served read-only through mounts only as root")
    if kind == "cvmfs":
        fake: FakeCvmfs = request.getfixturevalue("fake_cvmfs")
        args = ["--publisher", "cvmfs", "--cvmfs-prefix", str(fake.prefix), *state]
        return Target("cvmfs", fake.repo, fake.root, args, fake=fake)
    real: RealCvmfs = request.getfixturevalue("real_cvmfs")
    sub = f"t-{uuid.uuid4().hex[:10]}"  # the module's repository is shared: a place of its own
    log = tmp_path / "meter.jsonl"
    env = meter.environment(log, real.server)
    return Target(
        "real",
        f"{real.repo}/{sub}",
        real.root / sub,
        ["--publisher", "cvmfs", *state],
        env=env,
        real=real,
        meter_log=log,
    )
