"""The publishers under faults: failed publishes and ingests, transactions left open by a
crashed ducc or by someone else, overlapping runs, signals, kill -9. Nothing is lost or
half-published, and ducc never aborts a transaction it did not open."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support.ducc import Run, app_image, ducc, unique, write_recipe
from tests.support.registry import LocalRegistry

pytestmark = [pytest.mark.integration, pytest.mark.root]


@pytest.fixture
def setup(
    registry: LocalRegistry, fake_cvmfs: FakeCvmfs, tmp_path: Path
) -> tuple[FakeCvmfs, Path, list[str]]:
    """A fake repository, a recipe of two fresh images, and ducc's options for it."""
    name = unique("safety")
    pusher = registry.pusher()
    refs = []
    for tag in ("1", "2"):
        pusher.image(f"{name}/app", tag, app_image(f"{name}-{tag}"))
        refs.append(f"{registry.url}/{name}/app:{tag}")
    recipe = write_recipe(tmp_path / "r.yaml", fake_cvmfs.repo, refs)
    state = tmp_path / "state"
    args = ["--publisher", "cvmfs", "--cvmfs-prefix", str(fake_cvmfs.prefix)]
    return fake_cvmfs, recipe, [*args, "--state-dir", str(state)]


def convert(recipe: Path, args: list[str], *extra: str, **env: str) -> Run:
    return ducc("convert", recipe, "--json", *args, *extra, env=env)


def in_transaction(fake: FakeCvmfs) -> bool:
    return "in transaction" in fake.ok("list").stdout


def test_failed_publish_is_aborted_and_the_next_run_completes(
    setup: tuple[FakeCvmfs, Path, list[str]],
) -> None:
    fake, recipe, args = setup
    run = convert(recipe, args, FAKE_CVMFS_FAIL_PUBLISH="1")
    assert run.code == 1
    assert sorted(run.outcomes().values()) == ["added", "failed"]
    assert not in_transaction(fake)
    assert [c.verb for c in fake.calls()].count("abort") == 1
    again = convert(recipe, args)
    assert again.code == 0, again.stderr
    assert sorted(again.outcomes().values()) == ["added", "unchanged"]
    assert ducc("verify", fake.root).code == 0


def test_killed_ingest_leaves_nothing_half_published(
    setup: tuple[FakeCvmfs, Path, list[str]],
) -> None:
    fake, recipe, args = setup
    run = convert(recipe, args, FAKE_CVMFS_DIE_INGEST="1")
    assert run.code == 1
    failed = [r for r in run.json()["images"] if r["outcome"] == "failed"]
    assert len(failed) == 1
    assert "cvmfs_server ingest" in failed[0]["error"]
    assert not in_transaction(fake)  # the dead ingest's transaction was ours: aborted
    assert ducc("verify", fake.root).code == 0
    assert convert(recipe, args).code == 0
    assert ducc("verify", fake.root).code == 0


def test_transaction_of_a_crashed_ducc_is_aborted(
    setup: tuple[FakeCvmfs, Path, list[str]], tmp_path: Path
) -> None:
    fake, recipe, args = setup
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    fake.ok("transaction", fake.repo)
    records = tmp_path / "state/transactions"
    records.mkdir(parents=True)
    record = {
        "repo": fake.repo,
        "path": None,
        "pid": dead.pid,
        "start_ticks": 1,
        "host": os.uname().nodename,
        "opened_at": 0.0,
        "kind": "transaction",
    }
    (records / f"{fake.repo}.json").write_text(json.dumps(record))
    run = convert(recipe, args)
    assert run.code == 0, run.stderr
    assert "stale_transaction_aborted" in run.stderr
    assert not in_transaction(fake)
    assert list(records.iterdir()) == []


def test_someone_elses_transaction_is_never_touched(
    setup: tuple[FakeCvmfs, Path, list[str]],
) -> None:
    fake, recipe, args = setup
    fake.ok("transaction", fake.repo)
    (fake.root / "operator-was-here").write_text("x")
    run = convert(recipe, args)
    assert run.code == 1
    assert "already in a transaction that ducc did not open" in run.stderr
    assert in_transaction(fake)
    assert (fake.root / "operator-was-here").exists()
    assert "abort" not in [c.verb for c in fake.calls()]
    forced = convert(recipe, args, "--abort-stale")
    assert forced.code == 0, forced.stderr
    assert not (fake.root / "operator-was-here").exists()


def test_overlapping_run_exits_zero_or_waits(
    setup: tuple[FakeCvmfs, Path, list[str]], tmp_path: Path
) -> None:
    fake, recipe, args = setup
    lock = tmp_path / "state/locks" / f"{fake.repo}.lock"
    lock.parent.mkdir(parents=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        run = ducc("convert", recipe, *args)
        assert run.code == 0
        assert "another ducc is already publishing" in run.stderr
        assert fake.count("transaction") == 0
        threading.Timer(1.0, os.close, [fd]).start()
        waited = ducc("convert", recipe, *args, "--wait")
        assert waited.code == 0, waited.stderr
        assert "2 added" in waited.stdout
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def test_gateway_builds_chains_and_flat_trees_under_their_own_leases(
    setup: tuple[FakeCvmfs, Path, list[str]],
) -> None:
    """Each product is a template transaction under a lease on the product itself: the
    template's source lies outside the lease (cvmfs' gateway merges only what changed inside
    it), so publishers of other shards work at the same time."""
    fake, recipe, args = setup
    run = convert(recipe, args, "--gateway", FAKE_CVMFS_GATEWAY="1")
    assert run.code == 0, run.stderr
    opened = [c.argv for c in fake.calls() if c.verb == "transaction"]
    products = {
        argv[-1]: argv for argv in opened if "/.flat/" in argv[-1] or "/.chains/" in argv[-1]
    }
    flats = [lease for lease in products if "/.flat/" in lease]
    chains = [lease for lease in products if "/.chains/" in lease]
    assert len(flats) == 2
    assert len(chains) == sum(r["chains_built"] for r in run.json()["images"]) >= 2
    for lease, argv in products.items():
        product = lease.split("/", 1)[1]
        assert lease.count("/") == 3  # REPO/.flat/xx/<hex>: the product itself
        template = [a for a in argv if a.startswith("/") and "=" in a]
        assert template == [] or template[0].endswith(f"=/{product}"), argv
    assert not in_transaction(fake)
    assert ducc("verify", fake.root).code == 0


def test_sigterm_finishes_or_aborts_the_transaction_and_exits_130(
    setup: tuple[FakeCvmfs, Path, list[str]],
) -> None:
    fake, recipe, args = setup
    env = {**os.environ, "FAKE_CVMFS_SLOW_PUBLISH": "1"}
    rng = random.Random(7)
    codes = []
    for _ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ducc", "convert", str(recipe), *args, "-g", "-f"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # From ducc's first cvmfs_server call on, it handles signals; a SIGTERM before that
        # (the interpreter still starting, on a loaded machine) would test Python, not ducc.
        _wait_for_call_from(fake, proc)
        time.sleep(rng.uniform(0.0, 2.0))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 130), err
        if proc.returncode == 130:
            assert "interrupted" in err
        assert not in_transaction(fake), err
        assert ducc("verify", fake.root).code == 0
    assert 130 in codes
    assert convert(recipe, args).code == 0


def _wait_for_call_from(fake: FakeCvmfs, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(call.ppid == proc.pid for call in fake.calls()):
        assert proc.poll() is None, "ducc ended before it called cvmfs_server"
        assert time.monotonic() < deadline, "ducc never called cvmfs_server"
        time.sleep(0.02)


@pytest.mark.parametrize("publisher", ["dir", "cvmfs"])
def test_kill_9_at_random_moments_then_the_next_run_completes(
    setup: tuple[FakeCvmfs, Path, list[str]], tmp_path: Path, publisher: str
) -> None:
    fake, recipe, args = setup
    if publisher == "dir":
        root = tmp_path / "dir-repo"
        args = ["--publisher", "dir", "--root", str(root), "--state-dir", str(tmp_path / "s2")]
    else:
        root = fake.root
    rng = random.Random(4)
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-m", "ducc", "convert", str(recipe), *args, "-g"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 1.5))
        proc.kill()
        proc.wait()
        run = convert(recipe, args)
        assert run.code == 0, run.stderr
        check = ducc("verify", root)
        assert check.code == 0, check.stdout
        if publisher == "cvmfs":
            assert not in_transaction(fake)


def test_directory_publisher_lets_one_ducc_at_a_time(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("dirlock")
    registry.pusher().image(f"{name}/app", "1", app_image("dirlock"))
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [f"{registry.url}/{name}/app:1"])
    root = tmp_path / "repo"
    root.mkdir()
    args = ["--publisher", "dir", "--root", str(root), "--state-dir", str(tmp_path / "s")]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # what a running ducc holds
    try:
        run = ducc("convert", recipe, *args)
        assert run.code == 0
        assert f"another ducc is already publishing into directory {root}" in run.stderr
        assert list(root.iterdir()) == []
        threading.Timer(1.0, os.close, [fd]).start()
        waited = ducc("convert", recipe, *args, "--wait")
        assert waited.code == 0, waited.stderr
        assert "1 added" in waited.stdout
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
