"""Hard-link clones: directories and symlinks recreated, files shared."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ducc.errors import LayerError
from ducc.layers.clone import clone_tree
from tests.support.layer_tars import E, apply, d, f, hard, snapshot, sym


@pytest.fixture
def source(tmp_path: Path) -> Path:
    tree = tmp_path / "src"
    tree.mkdir()
    apply(
        tree,
        [
            d("./", mode=0o751, mtime=1_000_000_000),
            d("etc", mode=0o755, uid=1, gid=2, mtime=1_100_000_000),
            f("etc/a", b"a", mode=0o4755),
            hard("etc/b", "etc/a"),
            sym("etc/link", "/etc/a", mtime=1_200_000_000, uid=3),
            sym("dangling", "nowhere"),
            d("tmp", mode=0o1777),
            d("ro", mode=0o555, xattrs={"user.mark": b"1"}),
            f("ro/x", b"x"),
            E("fifo", "fifo"),
            d("empty"),
        ],
    )
    return tree


def _without_inodes(view: dict[str, tuple[object, ...]]) -> dict[str, tuple[object, ...]]:
    """Snapshots minus inode numbers, which differ for recreated directories and symlinks."""
    return {k: v[:-2] + v[-1:] for k, v in view.items()}


def test_clone_looks_the_same_and_shares_file_inodes(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "dst"
    stats = clone_tree(source, target)
    assert _without_inodes(snapshot(target)) == _without_inodes(snapshot(source))
    assert os.lstat(target / "etc/a").st_ino == os.lstat(source / "etc/a").st_ino
    assert os.lstat(target / "etc/b").st_ino == os.lstat(target / "etc/a").st_ino
    assert os.lstat(target / "etc").st_ino != os.lstat(source / "etc").st_ino
    assert os.lstat(target / "etc/link").st_ino != os.lstat(source / "etc/link").st_ino
    assert os.lstat(target).st_mtime == 1_000_000_000
    assert stat.S_IMODE(os.lstat(target).st_mode) == 0o751
    assert os.getxattr(target / "ro", "user.mark") == b"1"
    assert (stats.symlinks, stats.links) == (2, 4)


def test_clone_into_an_existing_empty_directory(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "dst"
    target.mkdir()
    clone_tree(source, target)
    assert (target / "ro/x").read_bytes() == b"x"


def test_clone_refuses_a_non_empty_target(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "dst"
    target.mkdir()
    (target / "x").write_text("x")
    with pytest.raises(LayerError, match="not an empty directory"):
        clone_tree(source, target)


def test_clone_of_a_non_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LayerError, match="not a directory"):
        clone_tree(tmp_path / "file", tmp_path / "dst")
