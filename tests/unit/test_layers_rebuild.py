"""The clean tar re-emitted for `cvmfs_server ingest` holds what LITERAL application holds."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ducc.errors import HostileLayer
from ducc.layers.apply import ApplyMode
from ducc.layers.rebuild import rebuild_tar
from tests.support.layer_tars import E, apply, d, f, hard, snapshot, stream_of, sym, tar_bytes

CAPABILITY = bytes.fromhex("0000000200200000000000000000000000000000")
LAYER = [
    d("./"),
    d("/usr", mode=0o755),
    f("./usr/bin//tool", b"tool", mode=0o4755, uid=5, gid=6, pax={"mtime": "1600000000.5"}),
    hard("usr/bin/tool2", "/usr/bin/tool"),
    sym("usr/bin/abs", "/usr/bin/tool"),
    sym("usr/bin/rel", "../../etc/x"),
    f("x" * 150 + "/" + "y" * 150, b"long"),
    E(".wh.removed"),
    E("usr/.wh..wh..opq"),
    E("dev/null", "char", major=1, minor=3, mode=0o666),
    f(
        "caps",
        b"c",
        xattrs={"security.capability": CAPABILITY, "user.a": b"1", "trusted.no": b"2"},
    ),
]


def _rebuild(layer: bytes, lower: Path | None = None) -> bytes:
    out = io.BytesIO()
    rebuild_tar(stream_of(layer), out, name="L", lower=lower)
    return out.getvalue()


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        return archive.getmembers()


def test_names_are_clean_and_relative() -> None:
    names = [m.name for m in _members(_rebuild(tar_bytes(LAYER)))]
    assert names[:4] == ["usr", "usr/bin/tool", "usr/bin/tool2", "usr/bin/abs"]
    assert all(not n.startswith(("/", "./")) and ".." not in n.split("/") for n in names)
    assert ".wh.removed" in names
    assert "usr/.wh..wh..opq" in names


def test_attributes_survive() -> None:
    members = {m.name: m for m in _members(_rebuild(tar_bytes(LAYER)))}
    tool = members["usr/bin/tool"]
    assert (tool.mode, tool.uid, tool.gid, tool.mtime) == (0o4755, 5, 6, 1_600_000_000.5)
    assert members["usr/bin/tool2"].islnk()
    assert members["usr/bin/tool2"].linkname == "usr/bin/tool"
    assert members["usr/bin/rel"].linkname == "../../etc/x"
    assert (members["dev/null"].devmajor, members["dev/null"].devminor) == (1, 3)
    pax = members["caps"].pax_headers
    assert pax["SCHILY.xattr.security.capability"].encode("utf-8", "surrogateescape") == CAPABILITY
    assert "SCHILY.xattr.trusted.no" not in pax


@pytest.mark.root
def test_rebuilt_tar_applies_to_the_same_tree(tmp_path: Path) -> None:
    original, rebuilt = tmp_path / "a", tmp_path / "b"
    original.mkdir()
    rebuilt.mkdir()
    apply(original, tar_bytes(LAYER), mode=ApplyMode.LITERAL)
    apply(rebuilt, _rebuild(tar_bytes(LAYER)), mode=ApplyMode.LITERAL)
    strip = {k: v[:-2] + v[-1:] for k, v in snapshot(original).items()}
    assert strip == {k: v[:-2] + v[-1:] for k, v in snapshot(rebuilt).items()}


def test_hard_link_to_a_lower_file_becomes_a_regular_file(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    apply(lower, [f("etc/shadow", b"secret", mode=0o640)])
    members = _members(_rebuild(tar_bytes([hard("etc/shadow-", "etc/shadow")]), lower))
    assert [(m.name, m.isreg(), m.size, m.mode) for m in members] == [
        ("etc/shadow-", True, 6, 0o640)
    ]


def test_hard_link_to_a_lower_symlink_becomes_that_symlink(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    apply(lower, [sym("passwd", "/outside/passwd")])
    members = _members(_rebuild(tar_bytes([hard("h", "passwd")]), lower))
    assert [(m.name, m.issym(), m.linkname) for m in members] == [("h", True, "/outside/passwd")]


def test_hard_link_to_a_lower_directory_is_refused(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    apply(lower, [d("etc")])
    with pytest.raises(HostileLayer, match="hard link to a directory"):
        _rebuild(tar_bytes([hard("h", "etc")]), lower)


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        ([f("../x")], "'..'"),
        ([hard("a", "missing")], "does not exist in this layer or below"),
        ([sym(".", "/")], "root"),
        ([E(".wh.")], "invalid whiteout"),
    ],
)
def test_refuses_what_apply_refuses(layer: list[E], match: str) -> None:
    with pytest.raises(HostileLayer, match=match):
        _rebuild(tar_bytes(layer))


def test_output_ends_with_the_end_of_archive_marker() -> None:
    data = _rebuild(tar_bytes([f("a", b"1")]))
    assert data.endswith(bytes(1024))
    assert len(data) % 512 == 0


@pytest.mark.parametrize(
    ("pax_mtime", "expected"),
    [("nan", 0), ("inf", 9_223_372_036), ("-inf", -9_223_372_037), ("1e300", 9_223_372_036)],
)
def test_absurd_pax_times_are_rebuilt_clamped(pax_mtime: str, expected: int) -> None:
    # tarfile cannot write a NaN or infinite mtime: the rebuild used to fail with ValueError
    # (ending the whole run); the time is clamped as applying the layer clamps it.
    layer = tar_bytes([f("victim", b"v", pax={"mtime": pax_mtime}), f("after", b"a")])
    members = {m.name: m for m in _members(_rebuild(layer))}
    assert members["victim"].mtime == expected
    assert members["after"].mtime == 1_600_000_000


def _plain(layer: list[E], lower: Path | None = None) -> bool:
    return rebuild_tar(stream_of(tar_bytes(layer)), io.BytesIO(), name="L", lower=lower).plain


PLAIN = [d("etc"), f("etc/a", b"1"), hard("etc/b", "etc/a"), sym("lib", "usr/lib"), d("usr")]


@pytest.mark.parametrize(
    ("extra", "plain"),
    [
        ([], True),
        ([d("./")], True),  # a root entry as the tree's own root would be
        ([d("./", mode=0o700)], False),  # one that would change the chain's root
        ([E("etc/.wh.a")], False),  # a whiteout: the literal tree keeps the marker
        ([E("etc/.wh..wh..opq")], False),
        ([f("etc/a", b"2")], False),  # a name twice: which one the ingest keeps is its own
        ([f("lib/libx.so", b"x")], False),  # below a symlink of the layer
    ],
)
def test_a_plain_layer_is_its_own_changeset(extra: list[E], plain: bool) -> None:
    """`plain`: the literal tree equals the changeset applied to an empty tree, so the
    bottom chain may be a copy of the published layer tree."""
    assert _plain([*PLAIN, *extra]) is plain


def test_a_file_copied_from_below_is_not_plain(tmp_path: Path) -> None:
    lower = tmp_path / "lower"
    lower.mkdir()
    (lower / "data").write_bytes(b"lower")
    assert _plain([hard("link", "data")], lower=lower) is False
