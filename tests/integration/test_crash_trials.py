"""`kill -9` at random moments of `ducc convert`, over both publishers: what clients see stays
complete, nothing published is lost, and the next run completes with a clean result.

`DUCC_CRASH_TRIALS` (default 30) trials are split over the publishers and campaigns of up to
`CAMPAIGN` trials; a campaign id names its seed: `DUCC_CRASH_SEED=<seed>` runs it again.
In a third of the cvmfs trials the fake `cvmfs_server` injects a fault into the killed run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support.crash import Campaign, Target
from tests.support.registry import LocalRegistry

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.root]

TRIALS = int(os.environ.get("DUCC_CRASH_TRIALS", "30"))
SEED = int(os.environ.get("DUCC_CRASH_SEED", "20261128"))
CAMPAIGN = 8
RECORD = os.environ.get("DUCC_CRASH_RECORD")  # a file: one JSON line per trial is appended


def campaigns(publisher: str, offset: int) -> list[tuple[str, int, int, int]]:
    """(publisher, seed, trials, number) of each campaign: half the trials each publisher."""
    total = math.ceil(TRIALS / 2)
    count = math.ceil(total / CAMPAIGN)
    sizes = [total // count + (1 if i < total % count else 0) for i in range(count)]
    return [(publisher, SEED + offset + i, size, i) for i, size in enumerate(sizes)]


CAMPAIGNS = campaigns("dir", 0) + campaigns("cvmfs", 100)


def fault(publisher: str, number: int, index: int) -> int | None:
    """Every third cvmfs trial (counted over the campaigns) injects a fault, each kind in
    turn."""
    counted = number * CAMPAIGN + index
    if publisher != "cvmfs" or counted % 3:
        return None
    return counted // 3 - 1


@pytest.mark.parametrize(
    ("publisher", "seed", "trials", "number"),
    CAMPAIGNS,
    ids=[f"{p}-seed{s}-{n}trials" for p, s, n, _ in CAMPAIGNS],
)
def test_kill_9_at_random_moments(
    registry: LocalRegistry,
    fake_cvmfs: FakeCvmfs,
    tmp_path: Path,
    publisher: str,
    seed: int,
    trials: int,
    number: int,
) -> None:
    state = tmp_path / "ducc-state"
    if publisher == "dir":
        root = tmp_path / "dir-repo"
        args = ("--publisher", "dir", "--root", os.fspath(root), "--state-dir", os.fspath(state))
        target = Target(publisher, args, root, root, state, fake_cvmfs.repo)
    else:
        prefix = ("--publisher", "cvmfs", "--cvmfs-prefix", os.fspath(fake_cvmfs.prefix))
        args = (*prefix, "--state-dir", os.fspath(state))
        view = fake_cvmfs.state / fake_cvmfs.repo / "rdonly"
        target = Target(
            publisher, args, fake_cvmfs.root, view, state, fake_cvmfs.repo, fake_cvmfs.state
        )
    campaign = Campaign(registry, target, tmp_path, seed, trials)
    campaign.prepare()
    window = campaign.window
    print(
        f"campaign {publisher} seed={seed}: run {window.seconds:.2f}s, work from {window.work:.2f}s"
    )
    failed = []
    for index in range(1, trials + 1):
        result = campaign.trial(index, fault=fault(publisher, number, index))
        kill = result.kill
        print(
            f"trial seed={kill.plan.seed} delay={kill.plan.delay:.2f}s "
            f"everything={kill.plan.everything} faults={kill.plan.faults} killed={kill.killed} "
            f"exit={kill.exit_code} phase={kill.phase!r} violations={len(result.violations)} "
            f"seconds={kill.seconds:.2f}+{result.seconds:.2f}"
        )
        if RECORD:
            with open(RECORD, "a") as out:
                out.write(json.dumps(result.as_json(publisher)) + "\n")
        if result.violations:
            failed.append(f"trial seed {kill.plan.seed} ({kill.phase}): {result.violations}")
    assert not failed, "\n".join(failed)
