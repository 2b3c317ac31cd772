"""Whiteouts and opaque directories hide lower content only, in any tar order."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ducc.layers.apply import ApplyMode
from tests.support.layer_tars import E, apply, d, f, sym


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "root"
    tree.mkdir()
    apply(
        tree,
        [
            d("a"),
            f("a/lower", b"l"),
            d("a/b"),
            d("a/b/c"),
            f("a/b/c/bar", b"lower bar"),
            d("a/sub"),
            f("a/sub/deep", b"d"),
            f("top", b"t"),
            d("keep"),
            f("keep/x"),
        ],
    )
    return tree


def _names(root: Path) -> set[str]:
    found = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), root))
    return found


def test_whiteout_removes_a_lower_file_and_is_not_materialised(root: Path) -> None:
    stats = apply(root, [E(".wh.top")])
    assert not (root / "top").exists()
    assert not (root / ".wh.top").exists()
    assert stats.whiteouts == 1


def test_whiteout_removes_a_lower_directory_with_its_contents(root: Path) -> None:
    apply(root, [E("a/.wh.sub")])
    assert "a/sub" not in _names(root)
    assert (root / "a/lower").exists()


def test_whiteout_of_a_missing_path_is_ignored(root: Path) -> None:
    before = _names(root)
    apply(root, [E(".wh.nothing"), E("nowhere/.wh.x")])
    assert _names(root) == before


def test_whiteout_removes_a_symlink_not_its_target(root: Path) -> None:
    apply(root, [sym("link", "keep")])
    apply(root, [E(".wh.link")])
    assert not (root / "link").is_symlink()
    assert (root / "keep/x").exists()


def test_whiteout_after_a_same_layer_file_does_not_delete_it(root: Path) -> None:
    apply(root, [f("top", b"new top"), E(".wh.top")])
    assert (root / "top").read_bytes() == b"new top"


def test_whiteout_before_a_same_layer_file_hides_only_the_lower_one(root: Path) -> None:
    apply(root, [E(".wh.top"), f("top", b"recreated")])
    assert (root / "top").read_bytes() == b"recreated"


def test_whiteout_of_a_directory_redeclared_in_the_layer_keeps_the_new_content(
    root: Path,
) -> None:
    apply(root, [d("a/sub"), f("a/sub/new", b"n"), E("a/.wh.sub")])
    assert (root / "a/sub/new").exists()
    assert not (root / "a/sub/deep").exists()


def test_opaque_marker_first_clears_lower_children(root: Path) -> None:
    stats = apply(root, [d("a"), E("a/.wh..wh..opq"), f("a/fresh", b"f")])
    assert {n for n in _names(root) if n.startswith("a/")} == {"a/fresh"}
    assert not (root / "a/.wh..wh..opq").exists()
    assert stats.opaques == 1


def test_opaque_marker_after_entries_keeps_the_layers_own_files(root: Path) -> None:
    """OCI layer.md: the marker after `a/b/c/foo` must not delete foo."""
    apply(root, [d("a"), d("a/b"), d("a/b/c"), f("a/b/c/foo", b"foo"), E("a/.wh..wh..opq")])
    assert {n for n in _names(root) if n.startswith("a/")} == {"a/b", "a/b/c", "a/b/c/foo"}


def test_opaque_marker_after_implicit_parents(root: Path) -> None:
    apply(root, [f("a/b/c/foo", b"foo"), E("a/.wh..wh..opq")])
    assert {n for n in _names(root) if n.startswith("a/")} == {"a/b", "a/b/c", "a/b/c/foo"}


def test_opaque_directory_keeps_the_directory_and_other_trees(root: Path) -> None:
    apply(root, [E("a/.wh..wh..opq")])
    assert (root / "a").is_dir()
    assert not os.listdir(root / "a")
    assert (root / "keep/x").exists()
    assert (root / "top").exists()


def test_opaque_marker_of_a_missing_directory_is_ignored(root: Path) -> None:
    before = _names(root)
    apply(root, [E("missing/.wh..wh..opq")])
    assert _names(root) == before


def test_aufs_metadata_entries_are_ignored(root: Path) -> None:
    before = _names(root)
    apply(root, [E(".wh..wh.plnk"), E(".wh..wh.aufs")])
    assert _names(root) == before


def test_whiteout_then_directory_recreated_later_has_no_old_children(root: Path) -> None:
    apply(root, [E(".wh.a")])
    apply(root, [d("a"), f("a/only")])
    assert {n for n in _names(root) if n.startswith("a/")} == {"a/only"}


def test_literal_mode_keeps_whiteouts_as_files(tmp_path: Path) -> None:
    tree = tmp_path / "layerfs"
    tree.mkdir()
    stats = apply(tree, [E(".wh.top"), d("a"), E("a/.wh..wh..opq")], mode=ApplyMode.LITERAL)
    assert (tree / ".wh.top").read_bytes() == b""
    assert (tree / "a/.wh..wh..opq").is_file()
    assert (stats.whiteouts, stats.opaques, stats.files) == (0, 0, 2)
