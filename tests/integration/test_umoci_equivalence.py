"""The flat tree `unpack_layers` makes equals what `umoci unpack` makes of the same image:
names, types, modes (setuid included), owners, symlink targets, contents, device numbers,
xattrs and hard-link groups. Built images cover whiteouts, opaque directories (marker before
and after its siblings), hard links across layers, a directory replaced by a file and back,
symlinked parents, special files and owners. Needs root (umoci applies owners and devices).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from ducc.pipeline.unpack import unpack_layers
from tests.support.layer_tars import E, d, f, hard, sym, write_image
from tests.support.trees import describe, umoci_rootfs

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed"),
]

CAPABILITY = bytes.fromhex("0000000200200000000000000000000000000000")

BASE = [
    d("etc"),
    f("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
    f("etc/group", b"root:x:0:\n"),
    f("etc/shadow", b"root:*::0:::::\n", mode=0o640, gid=42),
    d("usr"),
    d("usr/bin"),
    d("usr/lib"),
    sym("bin", "usr/bin"),
    sym("lib", "/usr/lib"),
    f("usr/bin/tool", b"tool v1", mode=0o755),
    hard("usr/bin/tool-alias", "usr/bin/tool"),
    f("usr/bin/su", b"su", mode=0o4755),
    f("usr/bin/wall", b"wall", mode=0o2755, gid=5),
    f("usr/bin/ping", b"ping", mode=0o755, xattrs={"security.capability": CAPABILITY}),
    sym("usr/bin/python", "/usr/bin/python3.11"),
    sym("usr/bin/dangling", "../nowhere"),
    d("tmp", mode=0o1777),
    d("home"),
    d("home/user", mode=0o750, uid=1000, gid=1000),
    f("home/user/.profile", b"export A=1\n", uid=1000, gid=1000, mode=0o600),
    d("opaque-first"),
    f("opaque-first/old", b"old"),
    d("opaque-first/olddir"),
    f("opaque-first/olddir/x"),
    d("opaque-after"),
    f("opaque-after/old", b"old"),
    d("opaque-after/b"),
    d("opaque-after/b/c"),
    f("opaque-after/b/c/bar", b"lower bar"),
    d("dir-to-file"),
    f("dir-to-file/child", b"c"),
    f("file-to-dir", b"f"),
    d("var"),
    d("var/cache"),
    f("var/cache/big", b"cache" * 1000),
    d("dev"),
    E("dev/null", "char", major=1, minor=3, mode=0o666),
    E("dev/loop0", "block", major=7, minor=0, mode=0o660, gid=6),
    E("run-fifo", "fifo", mode=0o620),
    f("user.attr", b"x", xattrs={"user.origin": b"layer1"}),
]

MIDDLE = [
    E("etc/.wh.group"),
    f("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
    d("opaque-first"),
    E("opaque-first/.wh..wh..opq"),
    f("opaque-first/new", b"new"),
    d("opaque-after"),
    d("opaque-after/b"),
    d("opaque-after/b/c"),
    f("opaque-after/b/c/foo", b"kept foo"),
    E("opaque-after/.wh..wh..opq"),
    f("dir-to-file", b"now a file"),
    d("file-to-dir"),
    f("file-to-dir/inside", b"i"),
    hard("usr/bin/tool-lower-link", "usr/bin/tool"),
    f("usr/bin/tool-alias", b"alias rewritten"),
    f("lib/libfoo.so.1", b"\x7fELF", mode=0o755),
    sym("lib/libfoo.so", "libfoo.so.1"),
    E("var/.wh.cache"),
]

TOP = [
    d("dir-to-file", mode=0o700),
    f("dir-to-file/back", b"b"),
    f("file-to-dir", b"a file again"),
    d("var/cache", mode=0o755),
    f("var/cache/fresh", b"fresh"),
    hard("etc/passwd-", "etc/passwd"),
    f("usr/bin/su", b"su v2", mode=0o4711, uid=0, gid=0),
]


def _link_groups(root: Path) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            info = os.lstat(path)
            if not stat.S_ISDIR(info.st_mode):
                groups.setdefault(info.st_ino, set()).add(os.path.relpath(path, root))
    return {frozenset(g) for g in groups.values() if len(g) > 1}


@pytest.mark.parametrize(
    "layers",
    [[BASE], [BASE, MIDDLE], [BASE, MIDDLE, TOP]],
    ids=["one-layer", "two-layers", "three-layers"],
)
def test_flat_tree_equals_umoci_unpack(tmp_path: Path, layers: list[list[E]]) -> None:
    sources = write_image(tmp_path / "layout", "test", layers)
    reference = umoci_rootfs(f"{tmp_path / 'layout'}:test", tmp_path / "bundle")
    ours = tmp_path / "ours"
    unpack_layers(ours, sources)
    theirs_tree, ours_tree = describe(reference), describe(ours)
    assert sorted(ours_tree) == sorted(theirs_tree)
    for path, described in theirs_tree.items():
        assert ours_tree[path] == described, path
    assert _link_groups(ours) == _link_groups(reference)


def test_the_comparison_sees_differences(tmp_path: Path) -> None:
    """Guard for the test above: a changed mode, owner or link group must show."""
    a, b = tmp_path / "a", tmp_path / "b"
    sources = write_image(tmp_path / "layout", "t", [[f("x", b"1"), hard("y", "x")]])
    unpack_layers(a, sources)
    unpack_layers(b, sources)
    assert describe(a) == describe(b)
    os.chmod(b / "x", 0o4755)  # noqa: S103 - a difference the comparison must see
    assert describe(a) != describe(b)
    os.unlink(b / "y")
    (b / "y").write_bytes(b"1")
    assert _link_groups(a) != _link_groups(b)
