"""The fake cvmfs_server's ingest and overlay: tars published as their own transactions."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support.images import (
    build_tar,
    directory,
    file,
    hardlink,
    opaque,
    symlink,
    whiteout,
)

LAYER = ".layers/ab/abcdef/layerfs"
DUCC_INGEST = ("ingest", "--catalog", "-t", "-", "-b")


@pytest.fixture
def cvmfs(fake_cvmfs: FakeCvmfs) -> FakeCvmfs:
    """The repository as the fixture serves it (with mounts when root)."""
    return fake_cvmfs


def published(cvmfs: FakeCvmfs) -> Path:
    return cvmfs.state / cvmfs.repo / "rdonly"


def test_ingest_unpacks_dirs_files_symlinks_and_hard_links(fake_cvmfs_modes: FakeCvmfs) -> None:
    cvmfs = fake_cvmfs_modes
    tar = build_tar(
        [
            directory("etc", mode=0o750),
            file("etc/conf", "a=1", mode=0o640, uid=1000, gid=1000),
            symlink("etc/link", "conf"),
            hardlink("etc/same", "etc/conf"),
            file("usr/bin/tool", "#!/bin/sh", mode=0o755),  # no entry for usr/ or usr/bin/
        ]
    )
    cvmfs.ok("ingest", "--catalog", "-t", "-", "-b", LAYER, cvmfs.repo, stdin=tar)
    layer = cvmfs.root / LAYER
    assert (layer / "etc" / "conf").read_text() == "a=1"
    assert (layer / "etc").stat().st_mode & 0o777 == 0o750
    assert (layer / "etc" / "conf").stat().st_mode & 0o777 == 0o640
    assert os.readlink(layer / "etc" / "link") == "conf"
    same, conf = (layer / "etc" / "same").stat(), (layer / "etc" / "conf").stat()
    assert (same.st_ino, same.st_nlink) != (conf.st_ino, 2), "cvmfs breaks hard links up"
    assert (layer / "etc" / "same").read_text() == "a=1"
    assert (layer / "usr" / "bin" / "tool").read_text() == "#!/bin/sh"
    assert (layer / ".cvmfscatalog").read_bytes() == b""
    assert (published(cvmfs) / LAYER / "etc" / "conf").exists()
    assert cvmfs.revision() == 1
    assert cvmfs.transactions() == []


@pytest.mark.root
def test_ingest_keeps_the_tar_owners_and_ignores_unknown_options(fake_cvmfs: FakeCvmfs) -> None:
    """As cvmfs_server 2.11.5: entries keep the tar's owner; directories the tar only
    implies belong to the repository owner; -k, -u, -g are not options there (skipped)."""
    tar = build_tar([file("sub/f", uid=1000, gid=1001)])
    for options in (["-b", "default"], ["-k", "-b", "kept"], ["-u", "nobody", "-b", "user"]):
        fake_cvmfs.ok("ingest", "-t", "-", *options, fake_cvmfs.repo, stdin=tar)

    def owner(path: str) -> tuple[int, int]:
        st = (fake_cvmfs.root / path).stat()
        return st.st_uid, st.st_gid

    for base in ("default", "kept", "user"):
        assert owner(f"{base}/sub/f") == (1000, 1001)
        assert owner(f"{base}/sub") == owner(base) == (0, 0)


def test_a_missing_hard_link_target_fails_the_ingest(fake_cvmfs_modes: FakeCvmfs) -> None:
    """A hard link to anything but an entry of the same tar makes cvmfs' ingest fail;
    `--tolerate-missing-hardlinks` is no option of 2.11.5 and changes nothing."""
    cvmfs = fake_cvmfs_modes
    tar = build_tar([file("present", "x"), hardlink("dangling", "removed/by/whiteout")])
    for extra in ((), ("--tolerate-missing-hardlinks",)):
        failed = cvmfs.run("ingest", *extra, "-t", "-", "-b", "layer", cvmfs.repo, stdin=tar)
        assert failed.code == 1
        assert "not in the tar" in failed.stderr
        assert not (cvmfs.root / "layer").exists()
        assert (cvmfs.revision(), cvmfs.transactions()) == (0, [])


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/etc/escape"])
def test_ingest_refuses_names_leaving_the_base_dir(cvmfs: FakeCvmfs, name: str) -> None:
    tar = build_tar([file("fine", "ok"), file(name, "bad")])
    failed = cvmfs.run("ingest", "-t", "-", "-b", "layer", cvmfs.repo, stdin=tar)
    assert failed.code == 1
    assert "refusing tar member" in failed.stderr
    assert not (cvmfs.root / "layer").exists()
    assert not (cvmfs.root / "escape").exists()
    assert not (cvmfs.state.parent / "escape").exists()


def test_ingest_follows_no_symlink_on_the_way(cvmfs: FakeCvmfs, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    tar = build_tar([symlink("ln", str(outside)), file("ln/planted", "x")])
    cvmfs.ok("ingest", "-t", "-", "-b", "layer", cvmfs.repo, stdin=tar)
    assert list(outside.iterdir()) == []
    assert (cvmfs.root / "layer" / "ln" / "planted").read_text() == "x"


def test_ingest_adds_to_the_base_dir_and_touches_nothing_else(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"base/old": "old", "base/replaced": "1", "other/file": "o"})
    tar = build_tar([file("replaced", "2"), file("new", "n")])
    cvmfs.ok("ingest", "--tar_file", "-", "--base_dir", "/base/", cvmfs.repo, stdin=tar)
    base = cvmfs.root / "base"
    assert {p.name: p.read_text() for p in base.iterdir()} == {
        "old": "old",
        "replaced": "2",
        "new": "n",
    }
    assert (cvmfs.root / "other" / "file").read_text() == "o"


def test_ingest_reads_a_tar_file_with_short_options(cvmfs: FakeCvmfs, tmp_path: Path) -> None:
    archive = tmp_path / "layer.tar"
    archive.write_bytes(build_tar([file("f", "from file")]))
    cvmfs.ok("ingest", "-c", "-t", str(archive), "-b", "x/y", cvmfs.repo)
    assert (cvmfs.root / "x" / "y" / "f").read_text() == "from file"
    assert (cvmfs.root / "x" / "y" / ".cvmfscatalog").exists()


def test_ingest_delete_removes_several_paths(cvmfs: FakeCvmfs) -> None:
    cvmfs.publish_files({"a/1": "", "b/c/2": "", "b/keep": ""})
    done = cvmfs.ok("ingest", "--delete", "a", "-d", "b/c", "--delete", "nope", cvmfs.repo)
    assert "/nope does not exist" in done.stderr
    assert not (cvmfs.root / "a").exists()
    assert sorted(p.name for p in (cvmfs.root / "b").iterdir()) == ["keep"]
    assert cvmfs.revision() == 2


def test_ingest_waits_for_no_transaction(cvmfs: FakeCvmfs) -> None:
    cvmfs.ok("transaction", cvmfs.repo)
    refused = cvmfs.run("ingest", "-t", "-", "-b", "x", cvmfs.repo, stdin=build_tar([file("f")]))
    assert refused.code == 1
    assert "Impossible to start a transaction" in refused.stderr
    cvmfs.ok("abort", "-f", cvmfs.repo)
    assert not (cvmfs.root / "x").exists()


def test_gateway_ingest_takes_a_lease_on_its_base_dir(
    cvmfs: FakeCvmfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_CVMFS_GATEWAY", "1")
    cvmfs.publish_files({"busy/file": "", ".layers/ab/.cvmfscatalog": ""})
    cvmfs.ok("transaction", f"{cvmfs.repo}/busy")
    tar = build_tar([file("f", "layer")])
    cvmfs.ok(*DUCC_INGEST, ".layers/ab/abc", cvmfs.repo, stdin=tar)
    refused = cvmfs.run(*DUCC_INGEST, "busy/sub", cvmfs.repo, stdin=tar)
    assert "lease busy" in refused.stderr
    several = cvmfs.run("ingest", "-d", ".layers/ab/abc", "-d", "x", cvmfs.repo)
    assert "Could not delete multiple paths" in several.stderr
    assert (cvmfs.root / ".layers" / "ab" / "abc" / "f").read_text() == "layer"
    assert [t.path for t in cvmfs.transactions()] == ["busy"]


def ingest_layer(cvmfs: FakeCvmfs, path: str, entries: list[object]) -> None:
    tar = build_tar(entries)  # type: ignore[arg-type]
    cvmfs.ok(*DUCC_INGEST, path, cvmfs.repo, stdin=tar)


def test_overlay_exists_only_on_servers_newer_than_2_12(cvmfs: FakeCvmfs) -> None:
    """CernVM-FS 2.11.5 (and the 2.12 development branch) has no `overlay`: exit 3."""
    refused = cvmfs.run("overlay", "-l", "a", "-d", "b", cvmfs.repo)
    assert (refused.code, refused.stderr.strip()) == (3, "NOTE: Unrecognized command: overlay")
    assert "  overlay" not in cvmfs.ok("help").stdout
    newer = cvmfs.run("help", env={"FAKE_CVMFS_OVERLAY": "1"})
    assert "  overlay" in newer.stdout.splitlines()


def test_overlay_flattens_layers_with_oci_whiteouts(
    fake_cvmfs_modes: FakeCvmfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cvmfs = fake_cvmfs_modes
    monkeypatch.setenv("FAKE_CVMFS_OVERLAY", "1")
    ingest_layer(
        cvmfs,
        "layers/1",
        [file("etc/a", "1"), file("etc/b", "1"), file("opt/x/one", "1"), file("bin/tool", "1")],
    )
    ingest_layer(
        cvmfs,
        "layers/2",
        [whiteout("etc/a"), opaque("opt/x"), file("opt/x/two", "2"), file("bin/tool", "2")],
    )
    ingest_layer(cvmfs, "layers/3", [file("etc/a", "3"), whiteout("bin")])
    cvmfs.ok("overlay", "-l", "layers/1,layers/2,layers/3", "-d", ".flat/cd/cdef", cvmfs.repo)
    flat = cvmfs.root / ".flat" / "cd" / "cdef"
    contents = sorted(str(p.relative_to(flat)) for p in flat.rglob("*"))
    assert contents == [".cvmfscatalog", "etc", "etc/a", "etc/b", "opt", "opt/x", "opt/x/two"]
    assert (flat / "etc" / "a").read_text() == "3"
    assert cvmfs.revision() == 4
    again = cvmfs.run("overlay", "-l", "layers/1", "-d", ".flat/cd/cdef", cvmfs.repo)
    assert again.code == 1
    assert "already exists" in again.stderr
    missing = cvmfs.run("overlay", "-l", "layers/9", "-d", ".flat/cd/other", cvmfs.repo)
    assert missing.code == 1
    assert cvmfs.revision() == 4


def test_ingest_takes_only_an_uncompressed_tar(cvmfs: FakeCvmfs) -> None:
    compressed = gzip.compress(build_tar([file("f")]))
    failed = cvmfs.run("ingest", "-t", "-", "-b", "layer", cvmfs.repo, stdin=compressed)
    assert failed.code == 1
    assert "Fatal error in reading the archive" in failed.stderr
    assert (cvmfs.revision(), cvmfs.transactions()) == (0, [])
