"""Products appear only when complete; failures leave nothing behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ducc.errors import HostileLayer, LayerError
from ducc.layers.stage import remove_tree, staged
from tests.support.layer_tars import apply, d, f, sym


def test_success_renames_into_place_and_leaves_no_temp(tmp_path: Path) -> None:
    final = tmp_path / "products" / "abc"
    with staged(final) as tree:
        assert tree.parent.name.startswith(".abc.tmp-")
        assert stat.S_IMODE(os.lstat(tree.parent).st_mode) == 0o700
        assert not final.exists()
        (tree / "file").write_text("x")
    assert (final / "file").read_text() == "x"
    assert stat.S_IMODE(os.lstat(final).st_mode) == 0o755
    assert os.listdir(tmp_path / "products") == ["abc"]


def test_failure_removes_everything_and_reraises(tmp_path: Path) -> None:
    final = tmp_path / "abc"
    with pytest.raises(HostileLayer), staged(final) as tree:
        apply(tree, [f("good", b"1"), f("../bad")])
    assert os.listdir(tmp_path) == []


def test_failure_cleanup_copes_with_read_only_directories_and_symlinks(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("keep")
    final = tmp_path / "abc"

    def build() -> None:
        with staged(final) as tree:
            apply(tree, [d("ro", mode=0o500), f("ro/x", mode=0o400), d("none", mode=0o000)])
            os.symlink(victim, tree / "ro-link")
            os.symlink(victim, tree / "none-link")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        build()
    assert sorted(os.listdir(tmp_path)) == ["victim"]
    assert (victim / "keep").read_text() == "keep"


def test_the_tree_may_set_its_own_root_mode(tmp_path: Path) -> None:
    final = tmp_path / "abc"
    with staged(final) as tree:
        apply(tree, [d("./", mode=0o750)])
    assert stat.S_IMODE(os.lstat(final).st_mode) == 0o750


def test_existing_product_is_not_rebuilt(tmp_path: Path) -> None:
    final = tmp_path / "abc"
    final.mkdir()
    with pytest.raises(LayerError, match="already exists"), staged(final):
        pass
    os.rmdir(final)
    os.symlink("elsewhere", final)
    with pytest.raises(LayerError, match="already exists"), staged(final):
        pass


def test_product_that_appears_meanwhile_wins(tmp_path: Path) -> None:
    final = tmp_path / "abc"

    def build() -> None:
        with staged(final) as tree:
            (tree / "mine").write_text("m")
            final.mkdir()
            (final / "theirs").write_text("t")

    with pytest.raises(LayerError, match="appeared while"):
        build()
    assert os.listdir(final) == ["theirs"]
    assert os.listdir(tmp_path) == ["abc"]


def test_remove_tree_never_follows_symlinks(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "x").write_text("x")
    tree = tmp_path / "tree"
    tree.mkdir()
    apply(tree, [d("a"), sym("a/out", os.fspath(victim)), sym("b", "../victim")])
    remove_tree(tree)
    remove_tree(tmp_path / "missing")
    assert os.listdir(tmp_path) == ["victim"]
    assert (victim / "x").exists()


def test_remove_tree_of_a_symlink_removes_only_the_link(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir/x").write_text("x")
    os.symlink("dir", tmp_path / "link")
    remove_tree(tmp_path / "link")
    assert os.listdir(tmp_path) == ["dir"]


def test_opening_up_for_removal_touches_only_directories_inside(tmp_path: Path) -> None:
    """What an unprivileged removal needs first (root removes regardless of modes)."""
    from ducc.layers.stage import _open_up

    victim = tmp_path / "victim"
    victim.mkdir(mode=0o500)
    tree = tmp_path / "tree"
    tree.mkdir()
    layer = [d("a", mode=0o500), d("a/b", mode=0o000), f("a/file", mode=0o400)]
    apply(tree, [*layer, sym("a/link", os.fspath(victim))])
    _open_up(os.fspath(tree))
    assert stat.S_IMODE(os.lstat(tree / "a").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(tree / "a/b").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(tree / "a/file").st_mode) == 0o400
    assert stat.S_IMODE(os.lstat(victim).st_mode) == 0o500
