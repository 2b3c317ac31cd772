"""A flat Debian-style tree made from this machine's files runs a program under chroot.

The lower layer has the usrmerge symlinks (`bin -> usr/bin`, `lib -> usr/lib`, `lib64 ->
usr/lib64`), the upper layer writes the shell and its libraries through them, by the names
`ldd` prints. Needs root (chroot).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ducc.pipeline.unpack import unpack_layers
from tests.support.layer_tars import E, d, f, sym, write_image

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is not installed"),
]
SHELL = "/bin/sh"


def _libraries(program: str) -> list[str]:
    """The absolute library paths `ldd` lists for `program` (the loader included)."""
    output = subprocess.run(["ldd", program], check=True, capture_output=True, text=True).stdout
    return re.findall(r"(/\S+) \(0x", output)


def _upper_layer() -> list[E]:
    entries = [f(SHELL, Path(SHELL).read_bytes(), mode=0o755)]
    for library in _libraries(SHELL):
        entries.append(f(library, Path(os.path.realpath(library)).read_bytes(), mode=0o755))
    return entries


LOWER = [
    d("usr"),
    d("usr/bin"),
    d("usr/lib"),
    d("usr/lib/x86_64-linux-gnu"),
    d("usr/lib64"),
    sym("bin", "usr/bin"),
    sym("lib", "usr/lib"),
    sym("lib64", "usr/lib64"),
    d("tmp", mode=0o1777),
]


def test_chroot_runs_the_shell(tmp_path: Path) -> None:
    if not Path(SHELL).exists():
        pytest.skip(f"{SHELL} is missing")
    sources = write_image(tmp_path / "layout", "t", [LOWER, _upper_layer()])
    rootfs = tmp_path / "rootfs"
    unpack_layers(rootfs, sources)
    assert (rootfs / "usr/bin/sh").is_file()  # written through the `bin` symlink
    assert os.readlink(rootfs / "bin") == "usr/bin"
    result = subprocess.run(
        ["chroot", os.fspath(rootfs), SHELL, "-c", "echo ok"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr
