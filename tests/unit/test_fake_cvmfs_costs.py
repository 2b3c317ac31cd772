"""The fake cvmfs_server charges a publish what the real one processes: the regular files in
the transaction's upper dir (copy-up on `link(2)` included), nothing for a template's
catalog-level clone; and it publishes as cvmfs 2.11.5 does (hard links broken up, xattrs
dropped, `.wh.` names taken for whiteouts, one template per transaction)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support.images import build_tar, file


@pytest.fixture
def cvmfs(fake_cvmfs_modes: FakeCvmfs) -> FakeCvmfs:
    return fake_cvmfs_modes


def last_publish(cvmfs: FakeCvmfs) -> tuple[int, int]:
    call = [c for c in cvmfs.calls() if c.verb == "publish"][-1]
    return call.upper_files, call.upper_bytes


def test_a_publish_reports_the_files_and_bytes_it_processes(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    (cvmfs.root / "a").write_bytes(b"x" * 1000)
    (cvmfs.root / "d").mkdir()
    (cvmfs.root / "d" / "b").write_bytes(b"y" * 24)
    cvmfs.ok("publish", cvmfs.repo)
    assert last_publish(cvmfs) == (2, 1024)


def test_a_template_is_a_clone_that_costs_no_data(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"src/big": "z" * 100_000, "src/sub/deep": "deep"})
    cvmfs.ok("transaction", "-T", "/src=/dst", cvmfs.repo)
    (cvmfs.root / "dst" / "added").write_text("12345")
    cvmfs.ok("publish", cvmfs.repo)
    assert last_publish(cvmfs) == (1, 5)
    assert (cvmfs.root / "dst" / "big").read_text() == "z" * 100_000
    assert (cvmfs.root / "dst" / "sub" / "deep").read_text() == "deep"
    assert (cvmfs.root / "src" / "big").stat().st_ino != (cvmfs.root / "dst" / "big").stat().st_ino


def test_an_aborted_template_leaves_no_clone(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"src/f": "1"})
    cvmfs.ok("transaction", "-T", "/src=/dst", cvmfs.repo)
    assert (cvmfs.root / "dst" / "f").exists()
    cvmfs.ok("abort", "-f", cvmfs.repo)
    assert not (cvmfs.root / "dst").exists()
    assert cvmfs.transactions() == []


def test_one_template_per_transaction_the_last_counts(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"src/f": "1"})
    cvmfs.ok("transaction", "-T", "/src=/first", "-T", "/src=/second", cvmfs.repo)
    assert not (cvmfs.root / "first").exists()
    assert (cvmfs.root / "second" / "f").exists()


def test_a_template_transaction_is_listed_unhealthy_and_blocks_another(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"src/f": "1"})
    cvmfs.ok("transaction", "-T", "/src=/dst", cvmfs.repo)
    assert f"{cvmfs.repo} (stratum0 / local - in transaction - unhealthy)  " in (
        cvmfs.ok("list").stdout.splitlines()
    )
    second = cvmfs.run("transaction", cvmfs.repo)
    assert second.code == 1
    assert "cannot establish writable mountpoint" in second.stderr
    cvmfs.ok("publish", cvmfs.repo)


@pytest.mark.root
def test_link_of_a_published_file_copies_it_up(fake_cvmfs: FakeCvmfs) -> None:
    """overlayfs copies a lower file up whole on link(2): both names are charged, and the
    published names are separate files."""
    fake_cvmfs.publish_files({"tree/f": "q" * 4096})
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)
    os.link(fake_cvmfs.root / "tree" / "f", fake_cvmfs.root / "tree" / "g")
    fake_cvmfs.ok("publish", fake_cvmfs.repo)
    assert last_publish(fake_cvmfs) == (2, 8192)
    f, g = (fake_cvmfs.root / "tree" / "f").stat(), (fake_cvmfs.root / "tree" / "g").stat()
    assert (f.st_nlink, g.st_nlink) == (1, 1)
    assert f.st_ino != g.st_ino


@pytest.mark.root
def test_publishing_drops_extended_attributes(fake_cvmfs: FakeCvmfs) -> None:
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)
    path = fake_cvmfs.root / "f"
    path.write_text("x")
    os.setxattr(path, "user.origin", b"layer")
    fake_cvmfs.ok("publish", fake_cvmfs.repo)
    assert os.listxattr(path) == []


@pytest.mark.root
def test_wh_names_in_a_transaction_are_whiteouts(fake_cvmfs: FakeCvmfs) -> None:
    """cvmfs reads an upper name `.wh.X` as the deletion of X and never creates it."""
    fake_cvmfs.publish_files({"d/victim": "1"})
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)
    (fake_cvmfs.root / "d" / ".wh.victim").write_text("")
    fake_cvmfs.ok("publish", fake_cvmfs.repo)
    assert sorted(os.listdir(fake_cvmfs.root / "d")) == []


@pytest.mark.root
def test_replacing_a_directory_that_holds_wh_names_fails_the_publish(
    fake_cvmfs: FakeCvmfs,
) -> None:
    """A literal layer tree (ingested) may hold `.wh.` files; replacing or deleting its
    directory in a transaction crashes cvmfs' publish, and the transaction stays open."""
    fake_cvmfs.ok("ingest", "-t", "-", "-b", "layer", fake_cvmfs.repo, stdin=_wh_tar())
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)
    _remove_tree(fake_cvmfs.root / "layer")
    failed = fake_cvmfs.run("publish", fake_cvmfs.repo)
    assert failed.code == 1
    assert "Synchronization failed" in failed.stderr
    assert [t.path for t in fake_cvmfs.transactions()] == [""]
    fake_cvmfs.ok("abort", "-f", fake_cvmfs.repo)
    assert (fake_cvmfs.root / "layer" / ".wh.gone").exists()


def _wh_tar() -> bytes:
    return build_tar([file("kept", "1"), file(".wh.gone")])


def _remove_tree(path: Path) -> None:
    for child in path.iterdir():
        child.unlink()
    path.rmdir()
