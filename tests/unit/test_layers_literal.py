"""Literal application (`.layers/<xx>/<hex>/layerfs`): the layer's own content, as it is."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ducc.errors import HostileLayer
from ducc.layers.apply import ApplyMode
from tests.support.layer_tars import E, apply, d, f, hard, sym

LITERAL = ApplyMode.LITERAL


@pytest.fixture
def lower(tmp_path: Path) -> Path:
    tree = tmp_path / "chain"
    tree.mkdir()
    apply(tree, [d("usr"), d("usr/bin"), f("usr/bin/tool", b"lower tool", mode=0o4711)])
    apply(tree, [sym("bin", "usr/bin"), d("etc")])
    return tree


@pytest.fixture
def layerfs(tmp_path: Path) -> Path:
    tree = tmp_path / "layerfs"
    tree.mkdir()
    return tree


def test_nothing_below_is_deleted_and_whiteouts_stay(layerfs: Path) -> None:
    apply(layerfs, [f("a", b"1"), E(".wh.a"), E("d/.wh..wh..opq")], mode=LITERAL)
    assert sorted(os.listdir(layerfs)) == [".wh.a", "a", "d"]
    assert os.listdir(layerfs / "d") == [".wh..wh..opq"]


def test_hard_links_within_the_layer_stay_hard_links(layerfs: Path) -> None:
    apply(layerfs, [f("x", b"data"), hard("y", "x")], mode=LITERAL)
    assert os.lstat(layerfs / "x").st_ino == os.lstat(layerfs / "y").st_ino


def test_hard_link_to_a_lower_file_becomes_a_copy(layerfs: Path, lower: Path) -> None:
    stats = apply(layerfs, [d("usr"), hard("usr/tool2", "usr/bin/tool")], mode=LITERAL, lower=lower)
    copy = layerfs / "usr/tool2"
    assert copy.read_bytes() == b"lower tool"
    assert stat.S_IMODE(os.lstat(copy).st_mode) == 0o4711
    assert os.lstat(copy).st_ino != os.lstat(lower / "usr/bin/tool").st_ino
    assert stats.files == 1


def test_lower_target_is_resolved_through_lower_symlinks(layerfs: Path, lower: Path) -> None:
    apply(layerfs, [hard("t", "bin/tool")], mode=LITERAL, lower=lower)
    assert (layerfs / "t").read_bytes() == b"lower tool"


def test_hard_link_to_nothing_below_is_refused(layerfs: Path, lower: Path) -> None:
    with pytest.raises(HostileLayer, match="does not exist in this layer or below") as caught:
        apply(layerfs, [hard("t", "usr/bin/missing")], mode=LITERAL, lower=lower)
    assert caught.value.entry == "t"


def test_hard_link_to_a_lower_directory_is_refused(layerfs: Path, lower: Path) -> None:
    with pytest.raises(HostileLayer, match="hard link to a directory"):
        apply(layerfs, [hard("t", "etc")], mode=LITERAL, lower=lower)


def test_hard_link_to_a_lower_symlink_becomes_that_symlink(layerfs: Path, lower: Path) -> None:
    """As in the flat tree, where the link shares the symlink's inode; never followed."""
    stats = apply(layerfs, [hard("t", "bin"), hard("u", "bin/tool")], mode=LITERAL, lower=lower)
    assert os.readlink(layerfs / "t") == "usr/bin"
    assert os.lstat(layerfs / "t").st_mtime == os.lstat(lower / "bin").st_mtime
    assert (layerfs / "u").read_bytes() == b"lower tool"  # through the lower symlink
    assert (stats.symlinks, stats.files) == (1, 1)


def test_hard_link_without_a_lower_tree_is_refused(layerfs: Path) -> None:
    with pytest.raises(HostileLayer, match="does not exist"):
        apply(layerfs, [hard("t", "usr/bin/tool")], mode=LITERAL)
