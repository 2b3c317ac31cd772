"""Transaction records tell a crashed ducc's transaction from anybody else's; locks exclude."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ducc.errors import AnotherDuccRunning
from ducc.publish.records import Lock, TransactionRecord, TransactionRecords, process_start_ticks


def test_own_record_is_alive_and_dead_pid_is_not(tmp_path: Path) -> None:
    mine = TransactionRecord.mine("r.ch", None)
    assert mine.owner_alive()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = TransactionRecord("r.ch", None, child.pid, 1, mine.host, 0.0)
    assert not dead.owner_alive()


def test_reused_pid_is_not_the_owner() -> None:
    mine = TransactionRecord.mine("r.ch", None)
    ticks = process_start_ticks(os.getpid())
    assert ticks is not None
    reused = TransactionRecord("r.ch", None, os.getpid(), ticks + 1, mine.host, 0.0)
    assert not reused.owner_alive()


def test_other_host_is_never_presumed_dead() -> None:
    record = TransactionRecord("r.ch", None, 999_999_999, 1, "elsewhere.example", 0.0)
    assert record.owner_alive()


def test_records_round_trip_per_repo_and_lease(tmp_path: Path) -> None:
    records = TransactionRecords(tmp_path)
    records.write(TransactionRecord.mine("a.ch", None))
    records.write(TransactionRecord.mine("a.ch", ".flat/ab"))
    records.write(TransactionRecord.mine("b.ch", None))
    assert sorted(str(r.path) for r in records.of_repo("a.ch")) == [".flat/ab", "None"]
    records.remove("a.ch", ".flat/ab")
    assert [r.path for r in records.of_repo("a.ch")] == [None]
    (records.directory / "junk.json").write_text("{not json")
    assert len(records.of_repo("b.ch")) == 1


def test_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    target = tmp_path / "repo"
    target.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(target)!r}, os.O_RDONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(AnotherDuccRunning, match="another ducc is already publishing"):
            Lock(target, "directory x").acquire(wait=False)
    finally:
        holder.kill()
        holder.wait()
    with Lock(target, "directory x").held(wait=False):
        pass
