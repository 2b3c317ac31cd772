"""The layer writer thread: data lands in order, attributes last, every descriptor closed;
a failed write is raised in the caller's thread naming the entry."""

from __future__ import annotations

import contextlib
import os
import tarfile
from pathlib import Path

import pytest

from ducc.layers.metadata import Metadata
from ducc.layers.writer import IN_FLIGHT, FileWriter, WriteFailed


def _info(mode: int = 0o640, mtime: int = 1_600_000_000) -> tarfile.TarInfo:
    info = tarfile.TarInfo("x")
    info.mode, info.mtime, info.uid, info.gid = mode, mtime, os.geteuid(), os.getegid()
    return info


def _open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_files_get_their_data_and_attributes(tmp_path: Path) -> None:
    writer = FileWriter(Metadata(privileged=False, layer="L"))
    before = _open_fds()
    big = b"b" * (IN_FLIGHT + 12345)  # more than may wait: the caller waits, nothing lost
    for name, data in (("small", b"hello"), ("big", big), ("empty", b"")):
        fd = os.open(tmp_path / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        view = memoryview(data)
        for start in range(0, len(data), 1 << 20):
            writer.data(fd, view[start : start + (1 << 20)], name)
        writer.done(fd, _info(), name)
    writer.close()
    assert (tmp_path / "small").read_bytes() == b"hello"
    assert (tmp_path / "big").read_bytes() == big
    assert (tmp_path / "empty").read_bytes() == b""
    info = (tmp_path / "big").stat()
    assert (info.st_mode & 0o7777, info.st_mtime) == (0o640, 1_600_000_000)
    assert _open_fds() == before


def test_a_failed_write_names_its_entry_and_closes_every_descriptor(tmp_path: Path) -> None:
    writer = FileWriter(Metadata(privileged=False, layer="L"))
    before = _open_fds()
    full = os.open("/dev/full", os.O_WRONLY)  # every write: ENOSPC
    writer.data(full, memoryview(b"x" * 100), "usr/lib/big.so")
    writer.done(full, None, "usr/lib/big.so")
    fine = os.open(tmp_path / "after", os.O_WRONLY | os.O_CREAT, 0o600)
    with contextlib.suppress(WriteFailed):  # taken, or refused if the failure came first
        writer.data(fine, memoryview(b"y"), "after")
    writer.done(fine, None, "after")
    with pytest.raises(WriteFailed) as raised:
        writer.close()
    assert raised.value.entry == "usr/lib/big.so"
    assert "No space left" in str(raised.value)
    with pytest.raises(WriteFailed):  # and at the next hand-over
        writer.data(fine, memoryview(b"z"), "later")
    assert _open_fds() == before
