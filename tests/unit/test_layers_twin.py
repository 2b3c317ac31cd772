"""One pass, two trees: a layer's literal tree and its chain (the layer applied as a
changeset on a copy of the chain below) from one read of the layer. Both equal what two
separate passes make, and share no inode (damage to one never reaches the other)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ducc.errors import HostileLayer
from ducc.layers.apply import ApplyMode, apply_layer
from ducc.layers.clone import clone_tree
from tests.support.layer_tars import E, apply, d, f, hard, snapshot, stream_of, sym, tar_bytes

LOWER = [
    d("etc"),
    f("etc/passwd", b"root\n"),
    f("etc/group", b"root\n"),
    d("usr"),
    d("usr/lib"),
    sym("lib", "usr/lib"),
    f("usr/lib/libold.so", b"old"),
    d("opt"),
    f("opt/gone", b"x"),
    f("data", b"lower data"),
]
LAYER = [
    f("etc/passwd", b"root\nuser\n", mode=0o600),  # rewritten
    E("etc/.wh.group"),  # hidden
    f("lib/libnew.so", b"new", mode=0o755),  # through a symlink of the layer below
    E("opt/.wh..wh..opq"),  # opaque
    f("opt/kept", b"k"),
    d("home", mode=0o750),
    f("home/file", b"f", uid=0, gid=0),
    hard("home/alias", "home/file"),
    hard("data-link", "data"),  # a hard link to a file of the layer below
    sym("home/link", "file"),
]


def _without_inodes(tree: Path) -> dict[str, tuple[object, ...]]:
    return {path: described[:-2] for path, described in snapshot(tree).items()}


def test_one_pass_makes_what_two_passes_make(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    apply(lower, LOWER)
    separate_layer, separate_chain = tmp_path / "layer1", tmp_path / "chain1"
    separate_layer.mkdir()
    clone_tree(lower, separate_chain)
    apply(separate_layer, LAYER, mode=ApplyMode.LITERAL, lower=lower)
    apply(separate_chain, LAYER)

    layer, chain = tmp_path / "layer2", tmp_path / "chain2"
    layer.mkdir()
    clone_tree(lower, chain)
    data = tar_bytes(LAYER)
    stats = apply_layer(
        layer, stream_of(data), mode=ApplyMode.LITERAL, name="L", lower=lower, twin=chain
    )

    assert _without_inodes(layer) == _without_inodes(separate_layer)
    assert _without_inodes(chain) == _without_inodes(separate_chain)
    assert stats.digests.diff_size == len(data)
    for name in ("etc/passwd", "usr/lib/libnew.so", "home/file", "opt/kept"):
        literal = "lib/libnew.so" if name == "usr/lib/libnew.so" else name
        assert (chain / name).stat().st_ino != (layer / literal).stat().st_ino, name
    assert (chain / "home/alias").stat().st_ino == (chain / "home/file").stat().st_ino
    assert not (chain / "etc/group").exists()
    assert sorted(os.listdir(chain / "opt")) == ["kept"]
    assert (chain / "data-link").read_bytes() == b"lower data"


def test_a_refusal_in_either_tree_refuses_the_layer(tmp_path: Path) -> None:
    layer, chain = tmp_path / "layer", tmp_path / "chain"
    layer.mkdir()
    chain.mkdir()
    bad = tar_bytes([f("a", b"1"), hard("b", "missing")])
    with pytest.raises(HostileLayer, match="does not exist"):
        apply_layer(layer, stream_of(bad), mode=ApplyMode.LITERAL, name="L", twin=chain)


def test_only_a_literal_tree_has_a_twin(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="literal"):
        apply_layer(tmp_path, stream_of(tar_bytes([])), name="L", twin=tmp_path / "x")
