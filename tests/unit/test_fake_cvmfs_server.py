"""The fake cvmfs_server behaves like a stratum 0: transactions, leases, faults, its call log."""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
from pathlib import Path

import pytest

from tests.fakes.fixture import SESSION_LOCK, FakeCvmfs, sweep, unmount_under


@pytest.fixture
def cvmfs(fake_cvmfs_modes: FakeCvmfs) -> FakeCvmfs:
    """The repository with real mounts (root only) and in no-mount mode."""
    return fake_cvmfs_modes


def test_a_new_repository_holds_new_repository_at_revision_0(cvmfs: FakeCvmfs) -> None:
    assert (cvmfs.root / "new_repository").read_text().startswith("New CernVM-FS repository")
    assert cvmfs.revision() == 0
    assert cvmfs.transactions() == []


@pytest.mark.root
def test_the_repository_is_read_only_outside_a_transaction(fake_cvmfs: FakeCvmfs) -> None:
    with pytest.raises(OSError, match="Read-only file system") as raised:
        (fake_cvmfs.root / "file").write_text("x")
    assert raised.value.errno == errno.EROFS
    fake_cvmfs.publish_files({"file": "published"})
    with pytest.raises(OSError, match="Read-only file system") as raised:
        (fake_cvmfs.root / "file").write_text("changed")
    assert raised.value.errno == errno.EROFS


def test_publish_shows_the_changes_and_counts_the_revision(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    root = cvmfs.root
    (root / "dir").mkdir()
    (root / "dir" / "tool").write_text("#!/bin/sh\n")
    (root / "dir" / "tool").chmod(0o4755)
    os.link(root / "dir" / "tool", root / "dir" / "alias")
    (root / "link").symlink_to("dir/tool")
    (root / "new_repository").unlink()
    cvmfs.ok("publish", cvmfs.repo)
    assert cvmfs.revision() == 1
    assert not (root / "new_repository").exists()
    assert (root / "dir" / "tool").stat().st_mode & 0o7777 == 0o4755
    alias, tool = (root / "dir" / "alias").stat(), (root / "dir" / "tool").stat()
    assert alias.st_ino != tool.st_ino, "publishing breaks hard links up, as cvmfs does"
    assert (alias.st_nlink, tool.st_nlink) == (1, 1)
    assert (root / "dir" / "alias").read_text() == "#!/bin/sh\n"
    assert os.readlink(root / "link") == "dir/tool"
    published = cvmfs.state / cvmfs.repo / "rdonly" / "dir" / "tool"
    assert published.read_text() == "#!/bin/sh\n"


def test_abort_discards_the_changes(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"kept": "1"})
    cvmfs.ok("transaction", cvmfs.repo)
    (cvmfs.root / "kept").write_text("changed")
    (cvmfs.root / "added").write_text("2")
    cvmfs.ok("abort", "-f", cvmfs.repo)
    assert (cvmfs.root / "kept").read_text() == "1"
    assert not (cvmfs.root / "added").exists()
    assert cvmfs.revision() == 1
    assert cvmfs.transactions() == []


def test_abort_without_force_asks_first(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    refused = cvmfs.ok("abort", cvmfs.repo, stdin=b"n\n")
    assert "Are you sure (y/N)?" in refused.stdout
    assert len(cvmfs.transactions()) == 1
    cvmfs.ok("abort", cvmfs.repo, stdin=b"y\n")
    assert cvmfs.transactions() == []


@pytest.mark.root
def test_publish_applies_whiteouts_and_opaque_directories(fake_cvmfs: FakeCvmfs) -> None:
    fake_cvmfs.publish_files({"d/gone": "", "d/kept": "", "e/old": ""})
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)
    (fake_cvmfs.root / "d" / "gone").unlink()
    for child in (fake_cvmfs.root / "e").iterdir():
        child.unlink()
    (fake_cvmfs.root / "e").rmdir()
    (fake_cvmfs.root / "e").mkdir()  # overlayfs marks the new directory opaque
    (fake_cvmfs.root / "e" / "new").write_text("n")
    fake_cvmfs.ok("publish", fake_cvmfs.repo)
    assert sorted(p.name for p in (fake_cvmfs.root / "d").iterdir()) == ["kept"]
    assert sorted(p.name for p in (fake_cvmfs.root / "e").iterdir()) == ["new"]


def test_a_second_transaction_is_refused(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    second = cvmfs.run("transaction", cvmfs.repo)
    assert second.code == errno.EEXIST
    assert f"Repository {cvmfs.repo} is already in a transaction" in second.stderr
    cvmfs.ok("abort", "-f", cvmfs.repo)
    refused = cvmfs.run("publish", cvmfs.repo)
    assert refused.code == 1
    assert "is not in a transaction" in refused.stderr
    assert cvmfs.run("abort", "-f", cvmfs.repo).code == errno.EINVAL  # 22, as cvmfs_server


def test_a_path_without_gateway_is_recorded_as_scope_only(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"sub/file": ""})
    cvmfs.ok("transaction", f"{cvmfs.repo}/sub")
    assert [t.path for t in cvmfs.transactions()] == ["sub"]
    (cvmfs.root / "elsewhere").write_text("x")
    cvmfs.ok("publish", cvmfs.repo)
    assert (cvmfs.root / "elsewhere").exists()


@pytest.mark.parametrize(
    "form",
    [["-T src=dst"], ["-T", "/src=/dst"], ["--template", "src=dst"], ["-U", "src", "-V", "dst"]],
)
def test_template_transaction_starts_with_a_copy(cvmfs: FakeCvmfs, form: list[str]) -> None:
    cvmfs.publish_files({"src/file": "content", "src/sub/deep": "deep"})
    cvmfs.ok("transaction", *form, cvmfs.repo)
    assert (cvmfs.root / "dst" / "sub" / "deep").read_text() == "deep"
    (cvmfs.root / "dst" / "added").write_text("new")
    cvmfs.ok("publish", cvmfs.repo)
    assert (cvmfs.root / "dst" / "file").read_text() == "content"
    assert (cvmfs.root / "dst" / "added").exists()
    assert not (cvmfs.root / "src" / "added").exists()


def test_template_needs_a_source_and_a_free_destination(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"src/file": "", "taken/file": ""})
    for template in ("missing=dst", "src=taken", "src=no/parent"):
        refused = cvmfs.run("transaction", "-T", template, cvmfs.repo)
        assert refused.code != 0, template
        assert cvmfs.transactions() == []


def test_list_shows_an_open_transaction(cvmfs: FakeCvmfs) -> None:
    lines = cvmfs.ok("list").stdout.splitlines()
    assert f"{cvmfs.repo} (stratum0 / local)  " in lines
    cvmfs.ok("transaction", cvmfs.repo)
    lines = cvmfs.ok("list").stdout.splitlines()
    assert f"{cvmfs.repo} (stratum0 / local - in transaction)  " in lines


def test_writes_outside_a_transaction_fail_the_next_call(fake_cvmfs: FakeCvmfs) -> None:
    plain = dataclasses.replace(fake_cvmfs, repo="plain.repo")
    plain.ok("mkfs", plain.repo, env={"FAKE_CVMFS_NO_MOUNTS": "1"})
    (plain.root / "sneaky").write_text("x")
    refused = plain.run("transaction", plain.repo)
    assert refused.code == 1
    assert "written outside a transaction: sneaky" in refused.stderr
    assert plain.transactions() == []


# -- leases -------------------------------------------------------------------------------


def gateway(cvmfs: FakeCvmfs, monkeypatch: pytest.MonkeyPatch) -> FakeCvmfs:
    monkeypatch.setenv("FAKE_CVMFS_GATEWAY", "1")
    cvmfs.publish_files({"a/old": "", "x/old": ""})
    return cvmfs


def test_overlapping_leases_conflict_disjoint_ones_coexist(
    cvmfs: FakeCvmfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway(cvmfs, monkeypatch)
    cvmfs.ok("transaction", f"{cvmfs.repo}/a/b")
    for overlapping in ("a", "a/b", "a/b/c", ""):
        refused = cvmfs.run("transaction", f"{cvmfs.repo}/{overlapping}".rstrip("/"))
        assert refused.code == errno.EBUSY, overlapping
        assert "lease busy" in refused.stderr
    cvmfs.ok("transaction", f"{cvmfs.repo}/x")
    assert sorted(t.path for t in cvmfs.transactions()) == ["a/b", "x"]
    assert "(stratum0 / gw - in transaction)" in cvmfs.ok("list").stdout


def test_a_lease_needs_its_parent_directory(
    cvmfs: FakeCvmfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway(cvmfs, monkeypatch)
    assert cvmfs.run("transaction", f"{cvmfs.repo}/nothing/here").code == errno.ENOENT
    assert cvmfs.run("transaction", f"{cvmfs.repo}/a/old/below").code == errno.ENOTDIR


def test_publish_and_abort_act_on_one_lease(
    cvmfs: FakeCvmfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway(cvmfs, monkeypatch)
    cvmfs.ok("transaction", f"{cvmfs.repo}/a/b")
    cvmfs.ok("transaction", f"{cvmfs.repo}/x")
    (cvmfs.root / "a" / "b").mkdir()
    (cvmfs.root / "a" / "b" / "file").write_text("b")
    (cvmfs.root / "x" / "file").write_text("x")
    ambiguous = cvmfs.run("publish", cvmfs.repo)
    assert ambiguous.code == 1
    assert "several leases" in ambiguous.stderr
    cvmfs.ok("publish", f"{cvmfs.repo}/a/b")
    assert (cvmfs.state / cvmfs.repo / "rdonly" / "a" / "b" / "file").exists()
    assert not (cvmfs.state / cvmfs.repo / "rdonly" / "x" / "file").exists()
    assert (cvmfs.root / "x" / "file").read_text() == "x"
    cvmfs.ok("abort", "-f", cvmfs.repo)  # the one lease left
    assert not (cvmfs.root / "x" / "file").exists()
    assert (cvmfs.root / "a" / "b" / "file").read_text() == "b"
    assert cvmfs.revision() == 2


def test_a_write_outside_the_leases_fails_the_publish(
    cvmfs: FakeCvmfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway(cvmfs, monkeypatch)
    cvmfs.ok("transaction", f"{cvmfs.repo}/a")
    (cvmfs.root / "a" / "fine").write_text("")
    (cvmfs.root / "stray").write_text("")
    refused = cvmfs.run("publish", f"{cvmfs.repo}/a")
    assert refused.code == 1
    assert f"write outside lease {cvmfs.repo}/a: stray" in refused.stderr
    assert [t.path for t in cvmfs.transactions()] == ["a"]
    cvmfs.ok("abort", "-f", f"{cvmfs.repo}/a")
    assert not (cvmfs.root / "stray").exists()


def mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as mountinfo:
        return any(line.split()[4] == str(path) for line in mountinfo)


@pytest.mark.root
def test_unmount_all_and_rmfs_leave_nothing_mounted(fake_cvmfs: FakeCvmfs) -> None:
    fake_cvmfs.ok("transaction", fake_cvmfs.repo)
    assert mounted(fake_cvmfs.root)
    assert str(fake_cvmfs.root) in fake_cvmfs.ok("unmount-all").stdout
    assert not mounted(fake_cvmfs.root)
    fake_cvmfs.ok("rmfs", "-f", fake_cvmfs.repo)
    assert not fake_cvmfs.root.exists()
    assert not (fake_cvmfs.state / fake_cvmfs.repo).exists()
    assert fake_cvmfs.ok("list").stdout == ""


@pytest.mark.root
def test_a_sweep_unmounts_repositories_left_by_a_killed_run(
    fake_cvmfs: FakeCvmfs, tmp_path: Path
) -> None:
    left = tmp_path / "killed-run"
    orphan = FakeCvmfs("orphan.repo", left / "cvmfs", left / "state")
    env = {"FAKE_CVMFS_STATE": str(orphan.state), "FAKE_CVMFS_PREFIX": str(orphan.prefix)}
    orphan.ok("mkfs", orphan.repo, env=env)
    orphan.ok("transaction", orphan.repo, env=env)
    assert mounted(orphan.root)
    sweep(left)
    assert not mounted(orphan.root)
    assert mounted(fake_cvmfs.root)  # outside the swept directory


@pytest.mark.root
def test_a_sweep_spares_the_repositories_of_a_session_still_running(
    fake_cvmfs: FakeCvmfs, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    session = runs / "pytest-7"
    left = session / "test_x0"
    other = FakeCvmfs("other.repo", left / "cvmfs", left / "state")
    env = {"FAKE_CVMFS_STATE": str(other.state), "FAKE_CVMFS_PREFIX": str(other.prefix)}
    other.ok("mkfs", other.repo, env=env)
    try:
        other.ok("transaction", other.repo, env=env)
        lock = os.open(session / SESSION_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            sweep(runs)
            assert mounted(other.root)
        finally:
            os.close(lock)
        sweep(runs)
        assert not mounted(other.root)
    finally:
        unmount_under(left)
