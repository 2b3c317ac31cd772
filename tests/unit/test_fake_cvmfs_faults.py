"""The fake cvmfs_server's failure injection, call log and serialisation of callers."""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support.images import build_tar, file


@pytest.fixture
def cvmfs(fake_cvmfs: FakeCvmfs) -> FakeCvmfs:
    """The repository as the fixture serves it (with mounts when root)."""
    return fake_cvmfs


def test_the_nth_publish_fails_and_keeps_the_transaction(cvmfs: FakeCvmfs) -> None:
    failing = {"FAKE_CVMFS_FAIL_PUBLISH": "2"}
    cvmfs.ok("transaction", cvmfs.repo)
    cvmfs.ok("publish", cvmfs.repo, env=failing)
    cvmfs.ok("transaction", cvmfs.repo)
    (cvmfs.root / "pending").write_text("p")
    failed = cvmfs.run("publish", cvmfs.repo, env=failing)
    assert failed.code == 1
    assert "FAKE_CVMFS_FAIL_PUBLISH" in failed.stderr
    assert len(cvmfs.transactions()) == 1
    assert not (cvmfs.state / cvmfs.repo / "rdonly" / "pending").exists()
    assert cvmfs.revision() == 1
    cvmfs.ok("publish", cvmfs.repo, env=failing)  # fires once per setting
    assert (cvmfs.state / cvmfs.repo / "rdonly" / "pending").exists()


def test_an_injected_transaction_failure_opens_nothing(cvmfs: FakeCvmfs) -> None:
    failed = cvmfs.run("transaction", cvmfs.repo, env={"FAKE_CVMFS_FAIL_TRANSACTION": "1"})
    assert failed.code == 1
    assert cvmfs.transactions() == []
    assert "in transaction" not in cvmfs.ok("list").stdout


@pytest.mark.parametrize(
    ("variable", "args"),
    [
        ("FAKE_CVMFS_FAIL_INGEST", ["ingest", "-t", "-", "-b", "dest"]),
        ("FAKE_CVMFS_FAIL_OVERLAY", ["overlay", "-l", "layer", "-d", "dest"]),
    ],
)
def test_injected_ingest_and_overlay_failures_publish_nothing(
    cvmfs: FakeCvmfs, variable: str, args: list[str]
) -> None:
    cvmfs.publish_files({"layer/file": ""})
    env = {variable: "1", "FAKE_CVMFS_OVERLAY": "1"}
    failed = cvmfs.run(*args, cvmfs.repo, stdin=build_tar([file("f")]), env=env)
    assert failed.code == 1
    assert variable in failed.stderr
    assert not (cvmfs.root / "dest").exists()
    assert (cvmfs.revision(), cvmfs.transactions()) == (1, [])


def test_a_killed_ingest_leaves_the_repository_in_a_transaction(
    fake_cvmfs_modes: FakeCvmfs,
) -> None:
    cvmfs = fake_cvmfs_modes
    tar = build_tar([file(f"big/{i}", bytes(4096)) for i in range(64)])  # about 300 KiB
    died = cvmfs.run(
        "ingest",
        "-t",
        "-",
        "-b",
        "layer",
        cvmfs.repo,
        stdin=tar,
        env={"FAKE_CVMFS_DIE_INGEST": "1"},
    )
    assert died.code == -9
    assert not (cvmfs.root / "layer").exists()
    assert [(t.path, t.kind) for t in cvmfs.transactions()] == [("", "ingest")]
    assert f"{cvmfs.repo} (stratum0 / local - in transaction)" in cvmfs.ok("list").stdout
    assert cvmfs.run("transaction", cvmfs.repo).code == errno.EEXIST
    cvmfs.ok("abort", "-f", cvmfs.repo)
    cvmfs.ok("ingest", "-t", "-", "-b", "layer", cvmfs.repo, stdin=tar)
    assert len(list((cvmfs.root / "layer" / "big").iterdir())) == 64
    killed = [c for c in cvmfs.calls() if c.exit_code == -9]
    assert [(c.verb, c.injected) for c in killed] == [("ingest", "FAKE_CVMFS_DIE_INGEST")]


def test_a_foreign_transaction_blocks_the_next_one(cvmfs: FakeCvmfs) -> None:
    refused = cvmfs.run("transaction", cvmfs.repo, env={"FAKE_CVMFS_FOREIGN_TRANSACTION": "1"})
    assert refused.code == errno.EEXIST
    assert "already in a transaction" in refused.stderr
    assert [t.kind for t in cvmfs.transactions()] == ["foreign"]
    cvmfs.ok("abort", "-f", cvmfs.repo)
    cvmfs.ok("transaction", cvmfs.repo)


def test_the_call_log_records_every_call(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    cvmfs.ok("publish", cvmfs.repo)
    cvmfs.run("publish", cvmfs.repo)
    cvmfs.ok("ingest", "-t", "-", "-b", "x", cvmfs.repo, stdin=build_tar([file("f")]))
    mine = [c for c in cvmfs.calls() if c.repo == cvmfs.repo]
    assert [(c.argv[1], c.exit_code, c.revision) for c in mine[-4:]] == [
        ("transaction", 0, 0),
        ("publish", 0, 1),
        ("publish", 1, 1),
        ("ingest", 0, 2),
    ]
    assert mine[-1].argv == ("cvmfs_server", "ingest", "-t", "-", "-b", "x", cvmfs.repo)
    assert all(c.start <= (c.locked or c.start) <= c.end for c in mine)
    assert (cvmfs.count("publish"), cvmfs.count("publish", ok=True)) == (2, 1)
    assert "not in a transaction" in (mine[-2].error or "")


def holding(lock: Path) -> bool:
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_a_slow_publish_holds_off_other_callers(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    publisher = subprocess.Popen(
        ["cvmfs_server", "publish", cvmfs.repo],
        env={**os.environ, "FAKE_CVMFS_SLOW_PUBLISH": "1.5"},
    )
    while not holding(cvmfs.state / "lock"):
        assert publisher.poll() is None
        time.sleep(0.01)
    listed = cvmfs.ok("list")
    assert publisher.wait() == 0
    assert "in transaction" not in listed.stdout  # list waited for the publish
    publish, listing = [c for c in cvmfs.calls() if c.verb in ("publish", "list")][-2:]
    assert listing.start < publish.end <= (listing.locked or 0)


def test_concurrent_callers_are_serialised(cvmfs: FakeCvmfs) -> None:
    tar = build_tar([file(f"f{i}", bytes(1024)) for i in range(32)])
    ingests = [
        subprocess.Popen(
            ["cvmfs_server", "ingest", "-t", "-", "-b", f"layer{n}", cvmfs.repo],
            stdin=subprocess.PIPE,
        )
        for n in range(8)
    ]
    for process in ingests:
        assert process.stdin is not None
        process.stdin.write(tar)
        process.stdin.close()
    assert [p.wait() for p in ingests] == [0] * 8
    assert cvmfs.revision() == 8
    held = sorted((c for c in cvmfs.calls() if c.locked is not None), key=lambda c: c.locked or 0)
    for before, after in itertools.pairwise(held):
        assert before.end <= (after.locked or 0)
    assert sorted(c.revision or 0 for c in held if c.verb == "ingest") == list(range(1, 9))
    assert all(len(list((cvmfs.root / f"layer{n}").iterdir())) == 32 for n in range(8))
