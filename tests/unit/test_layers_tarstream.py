"""The streaming tar reader: headers by tarfile, names normalised, ends tolerated."""

from __future__ import annotations

import io
import tarfile

import pytest

from ducc.errors import HostileLayer
from ducc.layers.limits import Limits
from ducc.layers.tarstream import Kind, TarReader
from tests.support.layer_tars import E, d, f, hard, sym, tar_bytes


def _entries(data: bytes, limits: Limits = Limits()) -> list[tuple[str, Kind, str, bytes]]:  # noqa: B008
    reader = TarReader(io.BytesIO(data), limits=limits, name="L")
    found = []
    for entry in reader:
        body = b"".join(bytes(v) for v in reader.chunks()) if entry.kind is Kind.FILE else b""
        found.append((entry.name, entry.kind, entry.link, body))
    return found


def test_entries_are_normalised_and_typed() -> None:
    data = tar_bytes([d("./etc/"), f("/etc//a", b"A"), hard("b", "./etc/a"), sym("c", "/x/../y")])
    assert _entries(data) == [
        ("etc", Kind.DIRECTORY, "", b""),
        ("etc/a", Kind.FILE, "", b"A"),
        ("b", Kind.HARDLINK, "etc/a", b""),
        ("c", Kind.SYMLINK, "/x/../y", b""),
    ]


def test_unread_data_is_skipped() -> None:
    data = tar_bytes([f("a", b"x" * 5000), f("b", b"y")])
    reader = TarReader(io.BytesIO(data), limits=Limits(), name="L")
    assert [e.name for e in reader] == ["a", "b"]
    end_marker = 512  # the first zero block, which ends the archive
    assert (
        reader.position
        == len(tar_bytes([f("a", b"x" * 5000), f("b", b"y")], end=False)) + end_marker
    )


@pytest.mark.parametrize("data", [b"", bytes(1024), tar_bytes([f("a")], end=False)])
def test_missing_end_marker_and_empty_streams_are_accepted(data: bytes) -> None:
    assert len(_entries(data)) == (1 if data[:1] == b"a" else 0)


def test_global_pax_headers_are_applied_to_later_entries() -> None:
    out = io.BytesIO()
    with tarfile.open(
        fileobj=out, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uid": "77"}
    ) as archive:
        archive.addfile(tarfile.TarInfo("a"), io.BytesIO())
    reader = TarReader(io.BytesIO(out.getvalue()), limits=Limits(), name="L")
    assert [e.info.uid for e in reader] == [77]


def test_gnu_format_long_names() -> None:
    name = "d" * 200 + "/" + "n" * 200
    data = tar_bytes([f(name, b"1"), E("l" * 200, "hardlink", link=name)], fmt=tarfile.GNU_FORMAT)
    assert [e[0] for e in _entries(data)] == [name, "l" * 200]


def test_bad_header_names_its_offset() -> None:
    data = bytearray(tar_bytes([f("a", b"1"), f("b")]))
    data[1024] ^= 0xFF
    with pytest.raises(HostileLayer, match=r"\(header at byte 1024\)"):
        _entries(bytes(data))


def _header_blocks() -> list[bytes]:
    """Header blocks of every shape the fast path must decode exactly like tarfile."""
    blocks = []
    plain = tarfile.TarInfo("usr/share/doc/x/changelog.gz")
    plain.size, plain.mtime, plain.uname, plain.gname = 1234, 1_700_000_000, "root", "staff"
    blocks.append(plain.tobuf(tarfile.USTAR_FORMAT))
    prefixed = tarfile.TarInfo("p" * 120 + "/name")  # ustar splits it into prefix + name
    blocks.append(prefixed.tobuf(tarfile.USTAR_FORMAT))
    directory = tarfile.TarInfo("dir/")
    directory.type = tarfile.DIRTYPE
    blocks.append(directory.tobuf(tarfile.GNU_FORMAT))
    device = tarfile.TarInfo("dev/sda")
    device.type, device.devmajor, device.devminor, device.mode = tarfile.BLKTYPE, 8, 1, 0o660
    blocks.append(device.tobuf(tarfile.GNU_FORMAT))
    big_uid = tarfile.TarInfo("big")
    big_uid.uid = 1 << 30  # base-256 in GNU format: the slow path
    blocks.append(big_uid.tobuf(tarfile.GNU_FORMAT))
    latin = tarfile.TarInfo("caf\udce9")  # a non-UTF-8 byte kept as a surrogate
    blocks.append(latin.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
    v7_dir = bytearray(tarfile.TarInfo("olddir/").tobuf(tarfile.USTAR_FORMAT)[:512])
    v7_dir[156] = 0  # AREGTYPE with a trailing slash is a directory
    v7_dir[148:156] = b"%06o\0 " % (sum(v7_dir[:148]) + sum(v7_dir[156:]) + 256)
    blocks.append(bytes(v7_dir))
    trailing = bytearray(plain.tobuf(tarfile.USTAR_FORMAT)[:512])
    trailing[100:108] = b"644\0xyz\0"  # after the NUL: ignored, as tarfile ignores it
    trailing[116:124] = b"   12   "  # spaces around the number
    trailing[148:156] = b"%06o\0 " % (sum(trailing[:148]) + sum(trailing[156:]) + 256)
    blocks.append(bytes(trailing))
    heavy = bytearray(plain.tobuf(tarfile.USTAR_FORMAT)[:512])
    for field in (slice(0, 100), slice(157, 257), slice(265, 297), slice(297, 329)):
        heavy[field] = b"\xff" * (field.stop - field.start - 1) + b"\0"  # the largest sums
    heavy[345:500] = b"\xfe" * 154 + b"\0"  # ustar prefix
    heavy[148:156] = b"%06o\0 " % (sum(heavy[:148]) + sum(heavy[156:]) + 256)
    blocks.append(bytes(heavy))
    return [block[:512] for block in blocks]


def test_header_checksum_is_the_byte_sum_with_the_field_as_spaces() -> None:
    from ducc.layers.tarheader import checksum as _checksum

    for block in (bytes(512), b"\xff" * 512, bytes(range(256)) * 2, b"\x80" * 300 + b"\x7f" * 212):
        assert _checksum(block) == sum(block[:148]) + 8 * 32 + sum(block[156:])


@pytest.mark.parametrize("block", _header_blocks())
def test_fast_header_decoding_equals_tarfile(block: bytes) -> None:
    from ducc.layers.tarheader import Header as _Header

    ours = _Header.frombuf(block, "utf-8", "surrogateescape").get_info()
    theirs = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape").get_info()
    assert ours == theirs


def test_fast_header_decoding_keeps_tarfiles_errors() -> None:
    from ducc.layers.tarheader import Header as _Header

    block = bytearray(tarfile.TarInfo("x").tobuf(tarfile.USTAR_FORMAT)[:512])
    block[0] = ord("y")
    with pytest.raises(tarfile.HeaderError, match="bad checksum"):
        _Header.frombuf(bytes(block), "utf-8", "surrogateescape")
    with pytest.raises(tarfile.HeaderError):
        _Header.frombuf(bytes(512), "utf-8", "surrogateescape")


def test_a_stream_reads_as_tarfile_reads_it() -> None:
    """The one-block fast path and tarfile's member processing give the same members."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for n, block in enumerate(_header_blocks()):
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            info.name = f"{n}-{info.name}"[:90]
            info.size = info.size if info.isreg() else 0
            tar.addfile(info, io.BytesIO(bytes(info.size)) if info.isreg() else None)
    data = out.getvalue()
    with tarfile.open(fileobj=io.BytesIO(data), encoding="utf-8", errors="surrogateescape") as tar:
        theirs = [(m.get_info(), m.pax_headers) for m in tar.getmembers()]
    reader = TarReader(io.BytesIO(data), limits=Limits(), name="L")
    ours = [(e.info.get_info(), e.info.pax_headers) for e in reader]
    assert ours == theirs
