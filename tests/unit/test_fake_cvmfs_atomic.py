"""The fake cvmfs_server publishes atomically: a publish that dies part way leaves the old
published tree whole, as a crashed cvmfs_server publish does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fakes.fake_cvmfs.tree import replace_atomically


def published(tmp_path: Path) -> Path:
    tree = tmp_path / "rdonly"
    (tree / "flat").mkdir(parents=True)
    (tree / "flat" / "a").write_text("old a")
    os.link(tree / "flat" / "a", tree / "flat" / "a-link")
    (tree / "flat" / "b").write_text("old b")
    (tree / "lib").symlink_to("flat")
    return tree


def listing(tree: Path) -> dict[str, str]:
    return {
        os.path.relpath(p, tree): p.read_text() if p.is_file() and not p.is_symlink() else ""
        for p in sorted(tree.rglob("*"))
    }


def test_a_publish_dying_part_way_leaves_the_old_tree_whole(tmp_path: Path) -> None:
    tree = published(tmp_path)
    before = listing(tree)

    def half(following: Path) -> None:
        (following / "flat" / "a").unlink()
        (following / "flat" / "new").write_text("half")
        raise KeyboardInterrupt  # the process dies here

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(tree, half)
    assert listing(tree) == before
    assert os.stat(tree / "flat" / "a").st_ino == os.stat(tree / "flat" / "a-link").st_ino


def test_the_next_publish_starts_over_and_swaps_in_whole(tmp_path: Path) -> None:
    tree = published(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        replace_atomically(tree, lambda following: (_ for _ in ()).throw(KeyboardInterrupt))

    def change(following: Path) -> None:
        (following / "flat" / "b").unlink()
        (following / "flat" / "b").write_text("new b")

    replace_atomically(tree, change)
    assert listing(tree)["flat/b"] == "new b"
    assert listing(tree)["flat/a-link"] == "old a"
    assert not tree.with_name("rdonly.next").exists()
