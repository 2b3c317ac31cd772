"""In-tree resolution of parent directories, as if the tree were `/`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ducc.layers.paths import ResolveError, Resolver, open_file


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "usr/lib/libc.so").write_text("elf")
    os.symlink("usr/lib", root / "lib")
    os.symlink("/usr/lib", root / "abs")
    os.symlink("../../../../..", root / "up")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.mkfifo(root / "fifo")
    return root


def test_plain_and_symlinked_directories(tree: Path) -> None:
    resolver = Resolver(os.fspath(tree))
    assert resolver.directory("usr/lib", create=False) == "usr/lib"
    assert resolver.directory("lib", create=False) == "usr/lib"
    assert resolver.directory("abs", create=False) == "usr/lib"
    assert resolver.directory("", create=False) == ""


def test_dotdot_in_targets_never_climbs_above_the_root(tree: Path) -> None:
    resolver = Resolver(os.fspath(tree))
    assert resolver.directory("up", create=False) == ""
    assert resolver.directory("up/usr/lib", create=False) == "usr/lib"


def test_missing_directories_are_none_or_created(tree: Path) -> None:
    resolver = Resolver(os.fspath(tree))
    assert resolver.directory("lib/missing/deeper", create=False) is None
    assert resolver.directory("lib/made/deeper", create=True) == "usr/lib/made/deeper"
    assert (tree / "usr/lib/made/deeper").is_dir()


def test_loops_and_files_are_errors(tree: Path) -> None:
    resolver = Resolver(os.fspath(tree))
    with pytest.raises(ResolveError, match="too many levels"):
        resolver.directory("loop1/x", create=True)
    with pytest.raises(ResolveError, match="not a directory"):
        resolver.directory("lib/libc.so/x", create=True)


def test_cache_is_used_until_forgotten(tree: Path) -> None:
    resolver = Resolver(os.fspath(tree))
    assert resolver.directory("lib", create=False) == "usr/lib"
    os.unlink(tree / "lib")
    os.symlink("usr", tree / "lib")
    assert resolver.directory("lib", create=False) == "usr/lib"  # cached
    resolver.forget()
    assert resolver.directory("lib", create=False) == "usr"


def test_seen_reports_existing_directories_once(tree: Path) -> None:
    seen: list[str] = []
    resolver = Resolver(os.fspath(tree), seen=lambda rel, info: seen.append(rel))
    resolver.directory("lib", create=False)
    resolver.directory("usr/lib", create=False)
    assert seen == ["usr", "usr/lib"]


def test_open_file_opens_only_regular_files(tree: Path) -> None:
    resolver = Resolver(os.fspath(tree))
    fd = open_file(resolver, "lib/libc.so")
    assert fd is not None
    assert os.read(fd, 10) == b"elf"
    os.close(fd)
    assert open_file(resolver, "lib") is None  # a symlink: never followed
    assert open_file(resolver, "usr") is None
    assert open_file(resolver, "fifo") is None  # and it does not block
    assert open_file(resolver, "nothing/here") is None
    assert open_file(resolver, "loop1/x") is None
