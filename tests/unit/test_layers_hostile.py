"""Hostile layers: each is refused (naming layer and entry) or contained in the tree, and
nothing outside the target directory changes, ever.

Every test runs in a world of its own: `root/` is the target, `outside/` a sentinel with
files, a directory and a symlink. Attacks aim at `outside/` by relative paths (`../outside`)
and by its absolute path; a snapshot of everything but `root/` must not change. Symlinks in
parents are resolved as if `root/` were `/` (like containerd and umoci), so a symlink
pointing out of the tree is contained, not refused: writes through it land inside.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from ducc.errors import DuccError, HostileLayer, LayerError, VerificationError
from ducc.layers.apply import apply_layer
from ducc.layers.limits import Limits
from ducc.layers.stream import LayerStream
from ducc.oci.digest import Digest
from tests.support.layer_tars import (
    TAR,
    TAR_GZIP,
    TAR_ZSTD,
    E,
    apply,
    d,
    f,
    gz,
    hard,
    snapshot,
    sym,
    tar_bytes,
    tarinfo,
)

EVIL = "sha256:evil"
Layer = Sequence[E] | bytes


@dataclass
class World:
    base: Path
    root: Path
    outside: Path
    before: dict[str, tuple[object, ...]] = field(default_factory=dict)

    @property
    def out(self) -> str:
        """The sentinel's absolute path without the leading slash (for names in layers)."""
        return os.fspath(self.outside).lstrip("/")

    def freeze(self) -> None:
        self.before = self._outside_view()

    def _outside_view(self) -> dict[str, tuple[object, ...]]:
        view = snapshot(self.base)
        return {k: v for k, v in view.items() if k != "root" and not k.startswith("root/")}

    def assert_untouched(self) -> None:
        assert self._outside_view() == self.before


@pytest.fixture
def world(tmp_path: Path) -> World:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    (outside / "dir").mkdir(parents=True)
    (outside / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n")
    (outside / "dir/x").write_bytes(b"x")
    os.symlink("passwd", outside / "link")
    return World(tmp_path, root, outside)


@dataclass(frozen=True)
class Case:
    id: str
    layers: Callable[[World], list[Layer]]
    entry: str | None = None  # the entry a HostileLayer must name (None: not checked)
    error: type[DuccError] = HostileLayer
    match: str | None = None
    limits: Limits = Limits()  # noqa: RUF009 - frozen, shared safely
    media_type: str = TAR


def _raw(
    info: tarfile.TarInfo, data: bytes = b"", fmt: Literal[0, 1, 2] = tarfile.USTAR_FORMAT
) -> bytes:
    info.size = len(data)
    return info.tobuf(fmt, "utf-8", "surrogateescape") + data + bytes(-len(data) % 512)


def _extension(kind: bytes, data: bytes, then: str = "victim") -> bytes:
    header = tarfile.TarInfo("././@Ext")
    header.type = kind
    return _raw(header, data) + _raw(tarinfo(f(then))) + bytes(1024)


def _chained_extensions(count: int) -> bytes:
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    return b"".join(_raw(header, b"11 a=bbbbb\n") for _ in range(count)) + _raw(tarinfo(f("x")))


def _corrupt_checksum() -> bytes:
    data = bytearray(tar_bytes([f("a"), f("b")]))
    data[0] ^= 0x20  # the name changes, the stored checksum no longer matches
    return bytes(data)


TWO = tar_bytes([f("first", b"1" * 3000), f("second", b"2" * 3000)])
SMALL = Limits(max_entries=10, max_bytes=64 * 1024, max_path=200, max_name=40, max_depth=8)

REFUSED = [
    Case("dotdot", lambda w: [[f("../x")]], "../x", match="'..'"),
    Case("dotdot-deep", lambda w: [[f("a/../../x")]], "a/../../x"),
    Case("dot-slash-dotdot", lambda w: [[f("./../x")]], "./../x"),
    Case("dotdot-after-two", lambda w: [[f("a/b/../../../x")]], "a/b/../../../x"),
    Case("dotdot-to-sentinel", lambda w: [[f("../outside/passwd", b"pwned")]], "../outside/passwd"),
    Case("dotdot-directory", lambda w: [[d("..")]], ".."),
    Case("dotdot-symlink-name", lambda w: [[sym("../outside/new", "/")]], "../outside/new"),
    Case(
        "hardlink-dotdot", lambda w: [[hard("h", "../outside/passwd")]], "h", match="'..' in hard"
    ),
    Case("hardlink-absolute-outside", lambda w: [[hard("h", "/" + w.out + "/passwd")]], "h"),
    Case("hardlink-etc-passwd", lambda w: [[hard("h", "/etc/passwd")]], "h", match="not exist"),
    Case("hardlink-missing", lambda w: [[hard("h", "nothing/here")]], "h", match="not exist"),
    Case("hardlink-directory", lambda w: [[d("dir"), hard("h", "dir")]], "h", match="directory"),
    Case("hardlink-root", lambda w: [[hard("h", "./")]], "h", match="root"),
    Case(
        "hardlink-via-escaping-symlink",
        lambda w: [[sym("x", "../outside")], [hard("h", "x/passwd")]],
        "h",
        match="not exist",
    ),
    Case("whiteout-empty-name", lambda w: [[E(".wh.")]], ".wh.", match="invalid whiteout"),
    Case("whiteout-dot", lambda w: [[E(".wh..")]], ".wh..", match="invalid whiteout"),
    Case("whiteout-dotdot", lambda w: [[E(".wh...")]], ".wh...", match="invalid whiteout"),
    Case("whiteout-dotdot-parent", lambda w: [[E("../.wh.outside")]], "../.wh.outside"),
    Case("whiteout-nested-dotdot", lambda w: [[E("a/../../.wh.x")]], "a/../../.wh.x"),
    Case("root-as-symlink-dot", lambda w: [[sym(".", "/" + w.out)]], ".", match="root"),
    Case("root-as-symlink-slash", lambda w: [[sym("/", "../outside")]], "/", match="root"),
    Case("root-as-file", lambda w: [[f("./", b"x")]], "./", match="root"),
    Case("root-as-hardlink", lambda w: [[f("a"), hard(".", "a")]], ".", match="root"),
    Case("bomb-by-size", lambda w: [[f("big", bytes(100_000))]], "big", limits=SMALL),
    Case("bomb-by-entries", lambda w: [[f(f"n{i}") for i in range(11)]], "n10", limits=SMALL),
    Case("path-too-long", lambda w: [[f("/".join(["abcdefghij"] * 7) + "/x" * 40)]], limits=SMALL),
    Case("name-too-long", lambda w: [[f("n" * 41)]], "n" * 41, limits=SMALL, match="over 40 bytes"),
    Case("too-deep", lambda w: [[f("a/" * 9 + "x")]], "a/" * 9 + "x", limits=SMALL),
    Case("symlink-loop-parent", lambda w: [[sym("a", "b"), sym("b", "a"), f("a/x")]], "a/x"),
    Case("parent-is-file", lambda w: [[f("p"), f("p/x")]], "p/x", match="not a directory"),
    Case("nul-in-name", lambda w: [[f("a", pax={"path": "a\x00b"})]], match="NUL"),
    Case("empty-symlink-target", lambda w: [[sym("s", "")]], "s", match="empty symlink"),
    Case("uid-out-of-range", lambda w: [[f("u", pax={"uid": str(1 << 40)})]], "u", match="range"),
    Case("unknown-type", lambda w: [[E("v", "V")]], "v", match="unsupported entry type"),
    Case(
        "gnu-sparse",
        lambda w: [_raw(tarinfo(E("s", "S")), b"", tarfile.GNU_FORMAT) + bytes(1024)],
        match="sparse",
    ),
    Case(
        "pax-sparse",
        lambda w: [[f("s", pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0"})]],
        match="sparse",
    ),
    Case("pax-zero-length-record", lambda w: [_extension(tarfile.XHDTYPE, b"0 path=x\n")]),
    Case(
        "pax-header-too-large",
        lambda w: [_extension(tarfile.XHDTYPE, b"9 a=bbbb\n" * 2000)],
        match="extension header",
        limits=Limits(max_header_bytes=4096),
    ),
    Case(
        "gnu-longname-too-large",
        lambda w: [_extension(tarfile.GNUTYPE_LONGNAME, b"n" * 8192)],
        match="extension header",
        limits=Limits(max_header_bytes=4096),
    ),
    Case("chained-pax-headers", lambda w: [_chained_extensions(5000)], match="too many extension"),
    Case("bad-checksum", lambda w: [_corrupt_checksum()], match="malformed tar header"),
    Case("truncated-in-data", lambda w: [TWO[:2000]], "first", match="ends inside"),
    Case("truncated-in-header", lambda w: [TWO[: 512 + 3072 + 100]], match="malformed"),
    Case(
        "gzip-bomb-tar",
        lambda w: [gz(tar_bytes([f("zeros", bytes(5_000_000))]))],
        "zeros",
        media_type=TAR_GZIP,
        limits=SMALL,
    ),
    Case(
        "gzip-bomb-raw",
        lambda w: [gz(tar_bytes([f("a")]) + bytes(20_000_000))],
        "(stream)",
        media_type=TAR_GZIP,
        limits=SMALL,
        match="expands",
    ),
    Case(
        "zstd-garbage",
        lambda w: [b"\x28\xb5\x2f\xfd" + os.urandom(300)],
        error=VerificationError,
        media_type=TAR_ZSTD,
        match="corrupt zstd",
    ),
    Case(
        "gzip-labelled-as-tar",
        lambda w: [gz(tar_bytes([f("a")]))],
        error=VerificationError,
        match="media type says none but the data is gzip",
    ),
]


def _apply_layers(world: World, case: Case) -> None:
    layers = case.layers(world)
    for lower in layers[:-1]:
        apply(world.root, lower)
    world.freeze()
    last = layers[-1]
    if isinstance(last, bytes) and case.media_type != TAR:
        stream = LayerStream(io.BytesIO(last), case.media_type, name=EVIL)
        apply_layer(world.root, stream, limits=case.limits, name=EVIL)
    else:
        apply(world.root, last, limits=case.limits, name=EVIL)


@pytest.mark.parametrize("case", REFUSED, ids=[c.id for c in REFUSED])
def test_hostile_layer_is_refused_and_nothing_outside_changes(world: World, case: Case) -> None:
    with pytest.raises(case.error, match=case.match) as caught:
        _apply_layers(world, case)
    error = caught.value
    assert EVIL in str(error)
    if isinstance(error, HostileLayer):
        assert error.layer == EVIL
        if case.entry is not None:
            assert error.entry == case.entry
    world.assert_untouched()


def test_there_are_at_least_thirty_refused_cases() -> None:
    assert len(REFUSED) >= 30


# -- contained: the layer is legal, its writes land inside the tree ---------------------------


def _inside(world: World, rel: str) -> bytes:
    return (world.root / rel).read_bytes()


def test_absolute_names_land_inside(world: World) -> None:
    world.freeze()
    apply(world.root, [f("/" + world.out + "/passwd", b"mine"), f("/etc/passwd", b"p")])
    assert _inside(world, world.out + "/passwd") == b"mine"
    assert _inside(world, "etc/passwd") == b"p"
    world.assert_untouched()


@pytest.mark.parametrize("target", ["/", "../../../../../../../..", "/../..", "./../"])
def test_symlink_to_outside_then_write_through_it_in_the_same_layer(
    world: World, target: str
) -> None:
    world.freeze()
    apply(world.root, [sym("x", target), f(f"x/{world.out}/passwd", b"pwned"), f("x/new", b"n")])
    assert _inside(world, world.out + "/passwd") == b"pwned"
    assert _inside(world, "new") == b"n"
    world.assert_untouched()


def test_symlink_to_outside_then_write_through_it_in_a_later_layer(world: World) -> None:
    apply(world.root, [sym("x", "../outside"), sym("y", "/" + world.out)])
    world.freeze()
    apply(world.root, [f("x/passwd", b"pwned"), d("y/dir", mode=0o777), f("y/dir/x", b"y")])
    assert _inside(world, "outside/passwd") == b"pwned"
    assert _inside(world, world.out + "/dir/x") == b"y"
    world.assert_untouched()


def test_symlink_to_etc_then_passwd(world: World) -> None:
    world.freeze()
    apply(world.root, [sym("x", "/etc")])
    apply(world.root, [f("x/passwd", b"evil")])
    assert _inside(world, "etc/passwd") == b"evil"
    assert os.readlink(world.root / "x") == "/etc"
    world.assert_untouched()


def test_symlinked_parent_chains_stay_inside(world: World) -> None:
    world.freeze()
    apply(world.root, [sym("a", "b/c"), sym("b", "../../x"), sym("x/c", "/" + world.out)])
    apply(world.root, [f("a/passwd", b"deep")])
    assert _inside(world, world.out + "/passwd") == b"deep"
    world.assert_untouched()


def test_file_over_a_symlink_replaces_the_symlink(world: World) -> None:
    apply(world.root, [sym("p", "../outside/passwd"), sym("q", "/" + world.out + "/passwd")])
    world.freeze()
    apply(world.root, [f("p", b"new", mode=0o777), hard("q", "p")])
    assert _inside(world, "p") == b"new"
    assert not (world.root / "q").is_symlink()
    world.assert_untouched()


def test_directory_over_a_symlink_never_chmods_the_target(world: World) -> None:
    apply(world.root, [sym("d", "../outside/dir")])
    world.freeze()
    apply(world.root, [d("d", mode=0o777, uid=os.geteuid()), d("d", mode=0o700)])
    assert (world.root / "d").is_dir()
    assert not (world.root / "d").is_symlink()
    world.assert_untouched()


def test_whiteouts_through_symlinked_parents_stay_inside(world: World) -> None:
    apply(world.root, [sym("x", "../outside"), sym("y", "/" + world.out)])
    world.freeze()
    apply(world.root, [E("x/.wh.passwd"), E("y/.wh.dir"), E("x/.wh..wh..opq")])
    world.assert_untouched()


def test_hard_link_to_an_escaping_symlink_links_the_symlink(world: World) -> None:
    apply(world.root, [sym("s", "../outside/passwd")])
    world.freeze()
    apply(world.root, [hard("h", "s")])
    apply(world.root, [f("h", b"overwrite")])  # unlink-then-create: never through the link
    assert _inside(world, "h") == b"overwrite"
    world.assert_untouched()


def test_device_entries_cannot_be_used_to_reach_the_host(world: World) -> None:
    world.freeze()
    apply(world.root, [E("disk", "block", major=8, minor=0)], privileged=False)
    assert not (world.root / "disk").exists()
    world.assert_untouched()


def test_refused_layer_names_digest_in_message(world: World) -> None:
    with pytest.raises(LayerError, match=r"layer sha256:evil: entry '\.\./x'"):
        apply(world.root, [f("../x")], name=EVIL)


def test_digest_of_hostile_layer_is_irrelevant_to_refusal(world: World) -> None:
    data = tar_bytes([f("../x")])
    stream = LayerStream(io.BytesIO(data), TAR, blob=Digest.of(data), name=EVIL)
    with pytest.raises(HostileLayer):
        apply_layer(world.root, stream, name=EVIL)


@pytest.mark.parametrize(
    ("pax_mtime", "sign"),
    [("nan", 0), ("inf", 1), ("-inf", -1), ("1e300", 1), ("9" * 40, 1), ("-" + "9" * 40, -1)],
)
def test_absurd_pax_times_are_clamped_not_a_crash(world: World, pax_mtime: str, sign: int) -> None:
    # tarfile turns a PAX mtime into a float: `nan`, `inf` and 1e300 used to escape as
    # ValueError/OverflowError from int(); the entry is kept with a clamped time instead.
    world.freeze()
    stats = apply(world.root, [f("victim", b"v", pax={"mtime": pax_mtime}), d("dir")])
    assert stats.files == 1
    assert _inside(world, "victim") == b"v"
    mtime = os.lstat(world.root / "victim").st_mtime_ns
    # Clamped to the extreme of its sign (the file system caps it further: 2**31 s on tmpfs).
    assert mtime == 0 if sign == 0 else mtime * sign >= (1 << 31) * 1_000_000_000
    world.assert_untouched()
