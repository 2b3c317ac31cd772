"""The cvmfs publisher after a crash: its own records never make it abort a transaction
somebody else opened later."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ducc.errors import RepositoryBusy
from ducc.publish.cvmfs import CvmfsPublisher
from ducc.publish.records import TransactionRecord
from tests.fakes.fixture import FakeCvmfs

pytestmark = pytest.mark.root


def dead_record(repo: str) -> TransactionRecord:
    """The record of a ducc killed after its publish, before removing the record."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return TransactionRecord(repo, None, child.pid, 1, os.uname().nodename, 0.0)


def test_a_dead_ducc_record_without_a_transaction_is_dropped(
    fake_cvmfs: FakeCvmfs, tmp_path: Path
) -> None:
    publisher = CvmfsPublisher(fake_cvmfs.repo, "", prefix=fake_cvmfs.prefix, state_dir=tmp_path)
    publisher.records.write(dead_record(fake_cvmfs.repo))
    with publisher.session(wait=False):
        assert publisher.records.of_repo(fake_cvmfs.repo) == []
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)  # an operator's, later
    with (
        pytest.raises(RepositoryBusy, match="did not open"),
        publisher.session(wait=False),
    ):
        pass
    assert "in transaction" in fake_cvmfs.ok("list").stdout
    assert "abort" not in [c.verb for c in fake_cvmfs.calls()]
