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
