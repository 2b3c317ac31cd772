"""unpack_layers: layers applied in order into a new or empty directory, or nothing at all."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from ducc.errors import DigestMismatch, HostileLayer, InputError
from ducc.oci.digest import Digest
from ducc.pipeline.unpack import LayerSource, unpack_layers
from tests.support.layer_tars import TAR, TAR_GZIP, TAR_ZSTD, E, d, f, gz, hard, sym, tar_bytes, zst


class _Blob(io.BytesIO):
    opened: list[str] = []  # noqa: RUF012 - a test log shared on purpose

    def close(self) -> None:
        self.opened.append("closed")
        super().close()


def _source(
    entries: list[E], media_type: str = TAR, *, diff_id: Digest | None = None
) -> LayerSource:
    tar = tar_bytes(entries)
    blob = {TAR: tar, TAR_GZIP: gz(tar), TAR_ZSTD: zst(tar)}[media_type]
    return LayerSource(
        name=f"sha256:{Digest.of(blob).hex}",
        media_type=media_type,
        blob=Digest.of(blob),
        size=len(blob),
        diff_id=diff_id or Digest.of(tar),
        open=lambda: _Blob(blob),
    )


LAYERS = [
    _source(
        [d("etc"), f("etc/os-release", b"ID=one\n"), f("bin/sh", b"sh"), sym("usr", ".")], TAR_GZIP
    ),
    _source(
        [f("etc/os-release", b"ID=two\n"), hard("bin/bash", "bin/sh"), E("etc/.wh.gone")], TAR_ZSTD
    ),
    _source([d("etc"), E("etc/.wh..wh..opq"), f("etc/only", b"o")], TAR),
]


def test_layers_are_applied_in_order(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    _Blob.opened.clear()
    stats = unpack_layers(dest, LAYERS)
    assert os.listdir(dest / "etc") == ["only"]
    assert os.lstat(dest / "bin/bash").st_ino == os.lstat(dest / "bin/sh").st_ino
    assert os.readlink(dest / "usr") == "."
    assert len(stats.layers) == 3
    assert stats.entries == 10
    assert stats.layers[1].digests.diff_id == LAYERS[1].diff_id
    assert _Blob.opened == ["closed"] * 3


def test_an_empty_existing_directory_is_fine(tmp_path: Path) -> None:
    unpack_layers(tmp_path, LAYERS[:1])
    assert (tmp_path / "etc/os-release").read_bytes() == b"ID=one\n"


def test_a_non_empty_destination_is_refused(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("x")
    with pytest.raises(InputError, match="is not empty"):
        unpack_layers(tmp_path, LAYERS)
    with pytest.raises(InputError, match="not a directory"):
        unpack_layers(tmp_path / "something", LAYERS)


def test_failure_removes_a_destination_it_created(tmp_path: Path) -> None:
    bad = _source([f("x")], TAR_GZIP, diff_id=Digest.of(b"not this"))
    with pytest.raises(DigestMismatch, match=f"layer {bad.name} diff_id"):
        unpack_layers(tmp_path / "rootfs", [LAYERS[0], bad])
    assert os.listdir(tmp_path) == []


def test_failure_empties_an_existing_destination(tmp_path: Path) -> None:
    dest = tmp_path / "rootfs"
    dest.mkdir()
    os.chmod(dest, 0o711)  # noqa: S103 - a mode a layer's root entry would change
    with pytest.raises(HostileLayer):
        unpack_layers(dest, [_source([d("./", mode=0o777), f("a")]), _source([f("../x")])])
    assert os.listdir(dest) == []
    assert os.lstat(dest).st_mode & 0o777 == 0o711
