"""A Debian-based image built from this machine's files, for tests and benchmarks that need a
real root filesystem: python3 with its standard library over usrmerge links in a base layer,
then an application layer that rewrites, hides (whiteout) and replaces (opaque directory)
files of the base, with hard links of its own.

`debian_layers("test")` is small enough for the test suite (about 20 MB); `"bench"` adds
data trees (about 160 MB, 2 layers), like the images the benchmarks describe.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from tests.support.images import (
    Entry,
    Layer,
    directory,
    file,
    hardlink,
    host_rootfs_entries,
    make_layer,
    opaque,
    symlink,
    whiteout,
)

Size = Literal["test", "bench"]
PYTHON = "/usr/bin/python3"
STDLIB = "/usr/lib/python3.11"
SKIPPED = {"__pycache__", "test", "tests", "idlelib", "tkinter", "turtledemo", "ensurepip"}
SKIPPED_PREFIXES = ("config-",)
DATA_TREES: dict[Size, tuple[tuple[str, int], ...]] = {
    "test": (),
    "bench": (("/usr/lib/python3/dist-packages", 1 << 40), ("/usr/share/doc", 50 << 20)),
}
APP_TREES: dict[Size, tuple[tuple[str, int], ...]] = {
    "test": (("/usr/share/perl", 2 << 20),),
    "bench": (
        ("/usr/share/perl", 1 << 40),
        ("/usr/lib/x86_64-linux-gnu/perl", 1 << 40),
        ("/usr/share/locale", 26 << 20),
    ),
}


def tree_entries(source: str, budget: int, skipped: set[str] = SKIPPED) -> Iterator[Entry]:
    """Directories, regular files (up to `budget` bytes in all) and symlinks of a host tree,
    named without the leading slash."""
    used = 0
    for top, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(
            d for d in dirnames if d not in skipped and not d.startswith(SKIPPED_PREFIXES)
        )
        yield directory(top.lstrip("/"), mode=stat.S_IMODE(os.lstat(top).st_mode))
        for name in sorted(filenames):
            path = os.path.join(top, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                yield symlink(path.lstrip("/"), os.readlink(path))
            elif stat.S_ISREG(info.st_mode) and used + info.st_size <= budget:
                used += info.st_size
                data = Path(path).read_bytes()
                yield file(path.lstrip("/"), data, mode=stat.S_IMODE(info.st_mode))


def _parents(entries: list[Entry]) -> list[Entry]:
    """Every missing parent directory of `entries`, placed before them."""
    present = {e.name for e in entries if e.kind == "dir"}
    missing: list[Entry] = []
    for entry in entries:
        parts = entry.name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            name = "/".join(parts[:depth])
            if name not in present:
                present.add(name)
                missing.append(directory(name))
    return missing


def base_entries(size: Size) -> list[Entry]:
    entries = host_rootfs_entries([PYTHON, "/bin/sh", "/bin/cat"])
    entries += tree_entries(STDLIB, 1 << 40)
    for source, budget in DATA_TREES[size]:
        entries += tree_entries(source, budget)
    entries += [directory("etc"), file("etc/os-release", 'NAME="ducc test base"\n')]
    entries += [file("etc/motd", "base\n"), directory("etc/app.d"), file("etc/app.d/old", "1\n")]
    return _parents(entries) + entries


def app_entries(size: Size, text: str) -> list[Entry]:
    entries: list[Entry] = []
    for source, budget in APP_TREES[size]:
        entries += tree_entries(source, budget)
    entries += [
        file("etc/motd", f"{text}\n"),  # rewrites a file of the base
        whiteout("usr/lib/python3.11/antigravity.py"),  # hides one
        opaque("etc/app.d"),  # replaces a directory's lower content
        file("etc/app.d/new", f"{text}\n"),
        file("etc/app", f"{text}\n"),
        hardlink("etc/app.hardlink", "etc/app"),
    ]
    return _parents(entries) + entries


def debian_layers(size: Size = "test", text: str = "app") -> tuple[Layer, Layer]:
    """The base and application layers (gzip)."""
    return make_layer(base_entries(size)), make_layer(app_entries(size, text))


def update_layer(megabytes: int = 2, text: str = "update") -> Layer:
    """A small top layer: one file of `megabytes` MB and a changed /etc/motd."""
    data = (text.encode() * (1 << 20))[: megabytes << 20]
    entries = [directory("opt"), file("opt/update.bin", data), file("etc/motd", f"{text}\n")]
    return make_layer(_parents(entries) + entries)
