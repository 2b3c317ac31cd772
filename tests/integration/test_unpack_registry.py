"""`ducc unpack IMAGE DEST` against a real registry: layers stream from it, verified."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.images import (
    file,
    make_image,
    make_index,
    make_layer,
    opaque,
    symlink,
    whiteout,
)
from tests.support.layer_tars import f, tar_bytes
from tests.support.registry import LocalRegistry
from tests.unit.test_cli import run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def host(registry: LocalRegistry) -> str:
    pusher = registry.pusher()
    base = make_layer([file("etc/os-release", "ID=base\n"), file("etc/gone", "g"), file("d/x")])
    top = make_layer(
        [whiteout("etc/gone"), opaque("d"), file("d/y", "y"), symlink("bin", "usr/bin")],
        compression="zstd",
    )
    pusher.image("unpack/app", "v1", make_image([base, top]))
    arm = make_image([make_layer([file("arch", "arm64")])], architecture="arm64", variant="v8")
    amd = make_image([make_layer([file("arch", "amd64")])])
    pusher.index("unpack/multi", "v1", make_index([amd, arm]))
    bad = make_image([base], diff_ids=["sha256:" + "0" * 64])
    pusher.image("unpack/bad", "v1", bad)
    evil = make_layer(tar_bytes([f("ok", b"1"), f("../../escape", b"x")]))
    pusher.image("unpack/evil", "v1", make_image([base, evil]))
    return registry.host


def test_unpack_writes_the_flat_tree(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "rootfs"
    code, out, _ = run(["unpack", f"http://{host}/unpack/app:v1", str(dest)], capsys)
    assert code == 0
    assert "2 layers" in out
    assert (dest / "etc/os-release").read_text() == "ID=base\n"
    assert not (dest / "etc/gone").exists()
    assert os.listdir(dest / "d") == ["y"]
    assert os.readlink(dest / "bin") == "usr/bin"


def test_unpack_picks_the_platform_from_an_index(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "arm"
    args = ["unpack", "--json", "--platform", "linux/arm64", f"http://{host}/unpack/multi:v1"]
    code, out, _ = run([*args, str(dest)], capsys)
    assert code == 0
    assert (dest / "arch").read_text() == "arm64"
    assert json.loads(out)["platform"] == "linux/arm64"


def test_unpack_refuses_a_non_empty_destination(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x").write_text("x")
    code, _, err = run(["unpack", f"http://{host}/unpack/app:v1", str(tmp_path)], capsys)
    assert code == 2
    assert "is not empty" in err


@pytest.mark.parametrize(
    ("repository", "words"), [("unpack/bad", "diff_id: digest mismatch"), ("unpack/evil", "'..'")]
)
def test_a_bad_layer_leaves_nothing(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], repository: str, words: str
) -> None:
    dest = tmp_path / "rootfs"
    code, _, err = run(["unpack", f"http://{host}/{repository}:v1", str(dest)], capsys)
    assert code == 1
    assert words in err
    assert os.listdir(tmp_path) == []
