"""The catalogue of hostile layers the end-to-end suite pushes and converts.

Each case is one image: a small benign base layer, then the hostile layers (for escapes
across layers a lower one plants a symlink or link and an upper one writes through it).
`refused`: the conversion of that image fails and the error names the culprit layer's digest
and what `says` lists (the entry, the kind of problem). `contained`: it converts and `check`
proves the hostile effect stayed inside the tree. Either way nothing outside changes.
"""

from __future__ import annotations

import functools
import os
import stat
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support import hostile as h
from tests.support.images import (
    LAYER_TYPES,
    Entry,
    Layer,
    directory,
    file,
    hardlink,
    make_layer,
    opaque,
    symlink,
    whiteout,
)

Expect = Literal["refused", "contained"]
Check = Callable[[Path], None]

# The benign base under every case (the flat tree always holds these).
BASE = make_layer(
    [
        directory("etc"),
        file("etc/os-release", "ID=hostile-base\n"),
        directory("data"),
        file("data/keep", "keep\n"),
    ]
)
# Caps the suite runs with, so that bombs are refused within seconds (command-line options).
MAX_ENTRIES = 5000
MAX_BYTES = 32 << 20
CAP_OPTIONS = ("--max-layer-entries", str(MAX_ENTRIES), "--max-layer-bytes", "32M")


@dataclass(frozen=True)
class Targets:
    """What hostile names aim at: `outside` exists (a sentinel with files, which must stay
    byte for byte as it is), `absent` does not (and must never appear)."""

    outside: str
    absent: str

    @property
    def out(self) -> str:
        return self.outside.lstrip("/")


# A layer as the catalogue gives it: entries, tar bytes, a ready layer, or (bombs, which
# take a moment to build) a function making one, called only when the case is run.
Part = list[Entry] | bytes | Layer | Callable[[], Layer | bytes]
# A fragment the error must hold, or a tuple of fragments of which it must hold one.
Says = str | tuple[str, ...]


def mentions(error: str, says: Says) -> bool:
    return any(fragment in error for fragment in ((says,) if isinstance(says, str) else says))


@dataclass(frozen=True)
class HostileCase:
    id: str
    category: str
    parts: tuple[Part, ...]  # the layers above BASE, bottom first
    expect: Expect
    says: tuple[Says, ...] = ()  # refused: what the error names besides the layer digest
    check: Check | None = None  # contained: what the converted tree holds
    unpack: bool = False  # also run through `ducc unpack`
    culprit: int = -1  # the layer (index in `layers`) a refusal must name

    @functools.cached_property
    def layers(self) -> tuple[Layer, ...]:
        return tuple(_layer(part) for part in self.parts)

    @property
    def culprit_digest(self) -> str:
        return self.layers[self.culprit].digest


def _case(
    id_: str,
    category: str,
    parts: list[Part],
    expect: Expect,
    *says: Says,
    check: Check | None = None,
    unpack: bool = False,
) -> HostileCase:
    return HostileCase(id_, category, tuple(parts), expect, says, check, unpack)


def _layer(part: Part) -> Layer:
    if callable(part):
        part = part()
    if isinstance(part, Layer):
        return part
    return h.layer(part) if isinstance(part, bytes) else make_layer(part)


# --- checks on the converted tree -----------------------------------------------------------


def holds(rel: str, data: bytes) -> Check:
    def check(tree: Path) -> None:
        path = tree / rel
        assert not path.is_symlink(), f"{rel} is a symlink"
        assert path.read_bytes() == data

    return check


def links(rel: str, target: str) -> Check:
    def check(tree: Path) -> None:
        assert os.readlink(tree / rel) == target

    return check


def is_kind(rel: str, test: Callable[[int], bool]) -> Check:
    def check(tree: Path) -> None:
        assert test(os.lstat(tree / rel).st_mode), f"{rel}: wrong file type"

    return check


def device(rel: str, test: Callable[[int], bool]) -> Check:
    """A device node of the layer: made as root; skipped (with a warning) otherwise."""
    return is_kind(rel, test) if os.geteuid() == 0 else lacks(rel)


def lacks(rel: str) -> Check:
    def check(tree: Path) -> None:
        assert not os.path.lexists(tree / rel), f"{rel} should not exist"

    return check


def every(*checks: Check) -> Check:
    def check(tree: Path) -> None:
        for one in checks:
            one(tree)

    return check


# --- the catalogue --------------------------------------------------------------------------


def catalogue(t: Targets) -> list[HostileCase]:
    return [
        *traversal(t),
        *symlinks(t),
        *hardlinks(t),
        *whiteouts(t),
        *devices(),
        *bombs(),
        *path_lengths(),
        *pax_headers(),
        *broken_archives(),
    ]


def traversal(t: Targets) -> list[HostileCase]:
    dots = "../" * 12 + t.out
    return [
        _case("dotdot-file", "traversal", [[file("../escape", "x")]], "refused",
              "entry '../escape'", "'..' in name", unpack=True),
        _case("dotdot-deep", "traversal", [[file("etc/../../escape")]], "refused",
              "entry 'etc/../../escape'", "'..'"),
        _case("dotdot-dot-slash", "traversal", [[file("./../escape")]], "refused",
              "entry './../escape'"),
        _case("dotdot-to-sentinel", "traversal", [[file(f"{dots}/passwd", "pwned")]],
              "refused", f"entry '{dots}/passwd'"),
        _case("dotdot-absolute", "traversal", [[file("/../../escape")]], "refused",
              "entry '/../../escape'"),
        _case("dotdot-directory", "traversal", [[directory("../escape-dir")]], "refused",
              "entry '../escape-dir'"),
        _case("dotdot-symlink-name", "traversal", [[symlink("../escape-link", "/")]],
              "refused", "entry '../escape-link'"),
        _case("dotdot-pax-path", "traversal",
              [h.pax({"path": "../pax-escape"}) + h.file_member("innocent", b"x") + h.END],
              "refused", "entry '../pax-escape'"),
        _case("dotdot-gnu-long-name", "traversal",
              [h.gnu_long_name("../" + "g" * 120, h.file_member("innocent")) + h.END],
              "refused", "'..' in name"),
        _case("dotdot-ustar-prefix", "traversal",
              [h.file_member("prefix-escape", prefix="..") + h.END], "refused",
              "entry '../prefix-escape'"),
        _case("dotdot-pax-global", "traversal",
              [h.pax({"path": "../global-escape"}, kind=b"g") + h.file_member("innocent")
               + h.END], "refused", "entry '../global-escape'"),
        _case("nul-in-pax-path", "traversal",
              [h.pax({"path": "etc/ok\x00/../../escape"}) + h.file_member("innocent")
               + h.END], "refused", "NUL byte"),
        _case("absolute-name-inside", "traversal",
              [[file(f"{t.absent}/planted", "planted"), file("/etc/passwd", "mine")]],
              "contained",
              check=every(holds(f"{t.absent.lstrip('/')}/planted", b"planted"),
                          holds("etc/passwd", b"mine")), unpack=True),
        _case("backslash-dotdot", "traversal", [[file("..\\..\\windows-escape", "w")]],
              "contained", check=holds("..\\..\\windows-escape", b"w")),
    ]  # fmt: skip


def symlinks(t: Targets) -> list[HostileCase]:
    climb = "../" * 20 + t.out
    return [
        _case("symlink-to-etc-passwd", "symlink", [[symlink("etc/passwd", "/etc/passwd")]],
              "contained", check=links("etc/passwd", "/etc/passwd"), unpack=True),
        _case("symlink-then-write-same-layer", "symlink",
              [[symlink("esc", t.outside), file("esc/passwd", "pwned")]], "contained",
              check=every(links("esc", t.outside), holds(f"{t.out}/passwd", b"pwned"))),
        _case("symlink-absolute-across-layers", "symlink",
              [[symlink("esc", t.outside)], [file("esc/passwd", "pwned"), file("esc/new")]],
              "contained", check=every(links("esc", t.outside),
                                       holds(f"{t.out}/passwd", b"pwned")), unpack=True),
        _case("symlink-relative-climb-across-layers", "symlink",
              [[symlink("data/esc", climb)], [file("data/esc/dir/x", "pwned")]], "contained",
              check=holds(f"{t.out}/dir/x", b"pwned")),
        _case("symlink-to-absent-across-layers", "symlink",
              [[symlink("esc", t.absent)], [directory("esc/sub"), file("esc/sub/f", "f")]],
              "contained", check=holds(f"{t.absent.lstrip('/')}/sub/f", b"f")),
        _case("symlink-chain-across-layers", "symlink",
              [[symlink("a", "b/c"), symlink("b", "../../x"), symlink("x/c", t.outside)],
               [file("a/passwd", "deep")]], "contained",
              check=holds(f"{t.out}/passwd", b"deep")),
        _case("symlink-dotdot-self", "symlink",
              [[symlink("up", "..")], [file("up/up/up/top", "top")]], "contained",
              check=holds("top", b"top")),
        _case("symlink-loop", "symlink",
              [[symlink("a", "b"), symlink("b", "a")], [file("a/x")]], "refused",
              "entry 'a/x'", "too many levels of symbolic links"),
        _case("file-over-escaping-symlink", "symlink",
              [[symlink("s", f"{t.outside}/passwd")], [file("s", "replaced")]], "contained",
              check=holds("s", b"replaced")),
        _case("directory-over-escaping-symlink", "symlink",
              [[symlink("d", t.outside)], [directory("d", mode=0o777)]], "contained",
              check=is_kind("d", stat.S_ISDIR)),
        _case("root-replaced-by-symlink", "symlink", [[symlink("./", t.outside)]], "refused",
              "entry './'", "root directory"),
        _case("symlink-empty-target", "symlink", [[symlink("empty", "")]], "refused",
              "entry 'empty'", "empty symlink target"),
    ]  # fmt: skip


def hardlinks(t: Targets) -> list[HostileCase]:
    return [
        _case("hardlink-dotdot", "hardlink", [[hardlink("h", "../../etc/passwd")]],
              "refused", "entry 'h'", "'..' in hard link target", unpack=True),
        _case("hardlink-absolute-sentinel", "hardlink",
              [[hardlink("h", f"{t.outside}/passwd")]], "refused", "entry 'h'",
              "does not exist"),
        _case("hardlink-etc-passwd", "hardlink", [[hardlink("h", "/etc/passwd")]], "refused",
              "entry 'h'", "does not exist"),
        _case("hardlink-through-symlink-across-layers", "hardlink",
              [[symlink("esc", t.outside)], [hardlink("h", "esc/passwd")]], "refused",
              "entry 'h'", "'esc/passwd' does not exist"),
        # A hard link to a lower layer's symlink: the flat tree shares the symlink's inode,
        # the literal layer gets a copy of the symlink; neither follows it.
        _case("hardlink-to-escaping-symlink", "hardlink",
              [[symlink("s", f"{t.outside}/passwd")], [hardlink("h", "s")]], "contained",
              check=every(links("h", f"{t.outside}/passwd"), links("s", f"{t.outside}/passwd"))),
        _case("hardlink-lower-then-overwrite", "hardlink",
              [[hardlink("data/alias", "data/keep"), file("data/keep", "overwritten")]],
              "contained",
              check=every(holds("data/keep", b"overwritten"), holds("data/alias", b"keep\n"))),
        _case("hardlink-to-directory", "hardlink", [[hardlink("h", "etc")]], "refused",
              "entry 'h'", "hard link to a directory"),
        _case("hardlink-to-root", "hardlink", [[hardlink("h", "./")]], "refused",
              "entry 'h'", "root"),
    ]  # fmt: skip


def whiteouts(t: Targets) -> list[HostileCase]:
    return [
        _case("whiteout-dotdot-parent", "whiteout", [[file("../.wh.outside")]], "refused",
              "entry '../.wh.outside'"),
        _case("whiteout-dot", "whiteout", [[file("etc/.wh..")]], "refused",
              "entry 'etc/.wh..'", "invalid whiteout"),
        _case("whiteout-dotdot-name", "whiteout", [[file("etc/.wh...")]], "refused",
              "entry 'etc/.wh...'", "invalid whiteout", unpack=True),
        _case("whiteout-empty-name", "whiteout", [[file(".wh.")]], "refused",
              "entry '.wh.'", "invalid whiteout"),
        _case("whiteout-through-symlink", "whiteout",
              [[symlink("w", t.outside)], [whiteout("w/passwd")]], "contained",
              check=links("w", t.outside), unpack=True),
        _case("opaque-through-symlink", "whiteout",
              [[symlink("o", t.outside)], [opaque("o")]], "contained",
              check=links("o", t.outside)),
        _case("whiteout-absolute-sentinel", "whiteout", [[whiteout(f"/{t.out}/passwd")]],
              "contained", check=holds("data/keep", b"keep\n")),
        _case("whiteout-base-through-dotdot-symlink", "whiteout",
              [[symlink("up", "../../..")], [whiteout("up/data"), opaque("up/etc")]],
              "contained", check=every(lacks("data"), lacks("etc/os-release"))),
    ]  # fmt: skip


def devices() -> list[HostileCase]:
    char, block, fifo = stat.S_ISCHR, stat.S_ISBLK, stat.S_ISFIFO
    return [
        _case("char-device-kept", "device",
              [[directory("dev"), Entry("dev/full", "char", mode=0o666, devmajor=1, devminor=7)]],
              "contained", check=device("dev/full", char)),
        _case("block-device-then-file", "device",
              [[Entry("disk", "block", mode=0o666, devmajor=7, devminor=250)],
               [file("disk", "not a disk")]], "contained",
              check=holds("disk", b"not a disk"), unpack=True),
        _case("char-device-then-file", "device",
              [[Entry("null", "char", mode=0o666, devmajor=1, devminor=3)],
               [file("null", "kept")]], "contained", check=holds("null", b"kept")),
        _case("fifo-then-file", "device",
              [[Entry("pipe", "fifo", mode=0o666)], [file("pipe", "no reader needed")]],
              "contained", check=holds("pipe", b"no reader needed")),
        _case("fifo-kept", "device", [[Entry("run-fifo", "fifo", mode=0o600)]], "contained",
              check=is_kind("run-fifo", fifo)),
        _case("block-device-kept", "device",
              [[Entry("loop", "block", mode=0o600, devmajor=7, devminor=251)]], "contained",
              check=device("loop", block)),
    ]  # fmt: skip


def bombs() -> list[HostileCase]:
    huge = b"\x80" + (1 << 70).to_bytes(11, "big")  # base-256 size field: 2**70 bytes

    def many_files() -> bytes:  # 48 MiB in 4 MiB files: the 8th crosses the cap
        return b"".join(h.file_member(f"part{i}", bytes(4 << 20)) for i in range(12)) + h.END

    return [
        _case("size-bomb-base256-header", "bomb",
              [h.member(h.ustar("huge", size_field=huge)) + h.END], "refused",
              "entry 'huge'", f"more than {MAX_BYTES} bytes"),
        _case("size-bomb-pax-size", "bomb",
              [h.pax({"size": str(10**15)}) + h.file_member("huge") + h.END], "refused",
              "entry 'huge'", f"more than {MAX_BYTES} bytes"),
        _case("size-bomb-one-file", "bomb",
              [lambda: h.file_member("zeros", bytes(48 << 20)) + h.END], "refused",
              "entry 'zeros'", f"more than {MAX_BYTES} bytes", unpack=True),
        _case("size-bomb-many-files", "bomb", [many_files], "refused",
              "entry 'part7'", f"more than {MAX_BYTES} bytes"),
        _case("gzip-bomb", "bomb", [lambda: h.zeros_bomb("gzip")], "refused", "(stream)",
              "expands to more than", unpack=True),
        _case("zstd-bomb", "bomb", [lambda: h.zeros_bomb("zstd")], "refused", "(stream)",
              "expands to more than"),
        _case("entry-count-bomb", "bomb", [lambda: h.many_entries(100_000)], "refused",
              f"more than {MAX_ENTRIES} entries", unpack=True),
    ]  # fmt: skip


def path_lengths() -> list[HostileCase]:
    legal = "/".join(["p" * 60] * 40) + "/deep"  # 2444 bytes, 41 components
    near = "/".join(["n" * 99] * 40) + "/end"  # 4003 bytes
    return [
        _case("path-5000-bytes-pax", "path-length",
              [[file("x" * 5000)]], "refused", "longer than 4096 bytes"),
        _case("path-5000-bytes-gnu", "path-length",
              [h.gnu_long_name("y" * 5000, h.file_member("innocent")) + h.END], "refused",
              "longer than 4096 bytes"),
        _case("component-300-bytes", "path-length", [[file("c" * 300)]], "refused",
              "over 255 bytes"),
        _case("depth-600", "path-length", [[file("d/" * 600 + "f")]], "refused",
              "more than 512 components"),
        _case("symlink-target-5000-bytes", "path-length",
              [[symlink("long-link", "t" * 5000)]], "refused", "entry 'long-link'",
              "symlink target longer than 4096"),
        _case("path-long-but-legal", "path-length", [[file(legal, "deep")]], "contained",
              check=holds(legal, b"deep")),
        # Under the cap, but the host's PATH_MAX (4096) counts the repository's own path too.
        _case("path-4003-bytes-over-path-max", "path-length", [[file(near, "near")]],
              "refused", f"entry '{near}'", "File name too long"),
    ]  # fmt: skip


def pax_headers() -> list[HostileCase]:
    def pax_file(records: dict[str, str], data: bytes = b"data") -> bytes:
        return h.pax(records) + h.file_member("victim", data) + h.END

    bad_length = b"99 path=short\n"  # the length says 99, the record has 14 bytes
    return [
        _case("pax-size-negative", "pax", [pax_file({"size": "-1"})], "refused",
              "malformed tar header"),
        _case("pax-size-inf", "pax", [pax_file({"size": "inf"})], "refused",
              "malformed tar header"),
        _case("pax-size-nan", "pax", [pax_file({"size": "nan"})], "refused",
              "malformed tar header"),
        _case("pax-mtime-nan", "pax", [pax_file({"mtime": "nan"}, b"nan")], "contained",
              check=holds("victim", b"nan")),
        _case("pax-mtime-inf", "pax", [pax_file({"mtime": "-inf"}, b"inf")], "contained",
              check=holds("victim", b"inf"), unpack=True),
        _case("pax-uid-huge", "pax", [pax_file({"uid": "9" * 40})], "refused",
              "entry 'victim'", "out of range"),
        _case("pax-bad-record-length", "pax",
              [h.raw_pax(bad_length) + h.file_member("victim") + h.END], "refused",
              # tarfile of Debian 12's Python 3.11.2 refuses the record itself
              ("NUL byte in name", "malformed tar header: invalid header")),
        _case("pax-header-2mib", "pax",
              [lambda: pax_file({"comment": "z" * (2 << 20)})], "refused", "extension header of"),
        _case("pax-headers-chained", "pax",
              [h.pax({"comment": "c"}) * 40 + h.file_member("victim") + h.END], "refused",
              "too many extension headers"),
    ]  # fmt: skip


def broken_archives() -> list[HostileCase]:
    tar = h.file_member("a", b"A" * 4000) + h.file_member("b", b"B" * 4000) + h.END
    gzip_type, zstd_type = LAYER_TYPES[("oci", "gzip")], LAYER_TYPES[("oci", "zstd")]
    plain = LAYER_TYPES[("oci", "none")]
    big = h.tar_of([file(f"f{i}", bytes([i]) * 50_000) for i in range(40)])
    return [
        _case("truncated-tar-in-data", "truncated",
              [h.raw_layer(tar[:2000], plain, h.sha256_hex(tar[:2000]))], "refused",
              "entry 'a'", "archive ends inside its data", unpack=True),
        _case("truncated-tar-in-header", "truncated",
              [h.raw_layer(tar[:4608 + 300], plain, h.sha256_hex(tar[:4908]))], "refused",
              "malformed tar header"),
        _case("truncated-gzip", "truncated", [h.truncated(big, "gzip", 0.5)], "refused",
              "corrupt gzip data"),
        _case("truncated-zstd", "truncated", [h.truncated(big, "zstd", 0.5)], "refused",
              "zstd data ends in the middle of a frame", unpack=True),
        _case("zstd-garbage", "compression",
              [h.garbage(b"\x28\xb5\x2f\xfd", 64 << 10, zstd_type)], "refused",
              "corrupt zstd data", unpack=True),
        _case("gzip-garbage", "compression",
              [h.raw_layer(h.deflate_garbage(64 << 10), gzip_type, h.sha256_hex(b""))],
              "refused", "corrupt gzip data"),
        _case("media-type-lie", "compression",
              [h.raw_layer(h.layer(tar).blob, zstd_type, h.sha256_hex(tar))], "refused",
              "media type says zstd but the data is gzip"),
        _case("not-a-tar", "tar-format",
              [h.raw_layer(b"\x7fELF" + bytes(range(256)) * 8, plain,
                           h.sha256_hex(b"\x7fELF" + bytes(range(256)) * 8))],
              "refused", "malformed tar header"),
        _case("bad-checksum", "tar-format", [_bad_checksum(tar)], "refused",
              "malformed tar header"),
        _case("gnu-sparse-entry", "tar-format",
              [h.member(h.ustar("sparse", kind=tarfile.GNUTYPE_SPARSE)) + h.END], "refused",
              "sparse files are not supported"),
        _case("unknown-entry-type", "tar-format",
              [h.member(h.ustar("odd", kind=b"Z")) + h.END], "refused", "entry 'odd'",
              "unsupported entry type"),
        _case("diff-id-lie", "tar-format",
              [h.raw_layer(h.layer(tar).blob, gzip_type, h.sha256_hex(b"another tar"))],
              "refused", "diff_id: digest mismatch", f"got {h.sha256_hex(tar)}"),
        _case("no-end-of-archive", "tar-format", [tar[: -len(h.END)]], "contained",
              check=holds("b", b"B" * 4000)),
    ]  # fmt: skip


def _bad_checksum(tar: bytes) -> Layer:
    data = bytearray(tar)
    data[0] ^= 0x20  # the name changes, the stored checksum no longer matches
    return h.layer(bytes(data))
