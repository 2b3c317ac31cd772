"""Changeset application: entry types, replacement rules, hard links, metadata."""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from ducc.errors import HostileLayer
from ducc.layers.clone import clone_tree
from tests.support.layer_tars import MTIME, E, apply, d, f, hard, snapshot, sym, tar_bytes

CAPABILITY = bytes.fromhex("0000000200200000000000000000000000000000")  # cap_net_raw+ep


@pytest.fixture
def root(tmp_path: Path) -> Path:
    tree = tmp_path / "root"
    tree.mkdir()
    return tree


def test_files_get_content_mode_and_mtime(root: Path) -> None:
    stats = apply(root, [d("etc"), f("etc/hostname", b"box\n", mode=0o640, mtime=1_500_000_000)])
    info = os.lstat(root / "etc/hostname")
    assert (root / "etc/hostname").read_bytes() == b"box\n"
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert info.st_mtime == 1_500_000_000
    assert (stats.files, stats.directories, stats.bytes) == (1, 1, 4)


def test_directory_mtime_is_applied_after_its_children(root: Path) -> None:
    apply(root, [d("usr", mtime=1_000_000_000), f("usr/a"), d("usr/lib"), f("usr/lib/b")])
    assert os.lstat(root / "usr").st_mtime == 1_000_000_000
    assert os.lstat(root / "usr/lib").st_mtime == MTIME


def test_pax_mtime_keeps_nanoseconds(root: Path) -> None:
    apply(root, [f("x", pax={"mtime": "1600000000.123456789"})])
    assert os.lstat(root / "x").st_mtime_ns == 1_600_000_000_123_456_789


def test_lower_directory_keeps_its_mtime_when_a_layer_adds_to_it(root: Path) -> None:
    apply(root, [d("etc", mtime=1_000_000_000)])
    apply(root, [f("etc/new")])
    assert os.lstat(root / "etc").st_mtime == 1_000_000_000


def test_missing_parents_are_created_with_the_times_of_their_first_entry(root: Path) -> None:
    apply(root, [f("a/b/c/file", b"x", mtime=1_234_567_890), f("a/b/other")])
    assert (root / "a/b/c/file").read_bytes() == b"x"
    assert stat.S_IMODE(os.lstat(root / "a/b").st_mode) == 0o755
    assert os.lstat(root / "a/b").st_mtime == 1_234_567_890


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
def test_long_names_and_long_link_targets(root: Path, fmt: int) -> None:
    deep = "/".join(["d" * 60] * 5) + "/" + "n" * 200
    layer = [f(deep, b"deep"), hard("short", deep), sym("s", "t" * 300)]
    apply(root, tar_bytes(layer, fmt=fmt))
    assert (root / deep).read_bytes() == b"deep"
    assert os.lstat(root / "short").st_ino == os.lstat(root / deep).st_ino
    assert os.readlink(root / "s") == "t" * 300


def test_leading_slash_and_dot_slash_are_stripped(root: Path) -> None:
    apply(root, [f("/abs", b"1"), f("./dot", b"2"), f(".//a/./b//c", b"3")])
    assert (root / "abs").read_bytes() == b"1"
    assert (root / "dot").read_bytes() == b"2"
    assert (root / "a/b/c").read_bytes() == b"3"


def test_root_entry_updates_root_attributes(root: Path) -> None:
    apply(root, [d("./", mode=0o750, mtime=1_000_000_000), f("x")])
    info = os.lstat(root)
    assert (stat.S_IMODE(info.st_mode), info.st_mtime) == (0o750, 1_000_000_000)


def test_duplicate_entries_last_one_wins(root: Path) -> None:
    apply(root, [f("x", b"first"), f("x", b"second", mode=0o600)])
    assert (root / "x").read_bytes() == b"second"
    assert stat.S_IMODE(os.lstat(root / "x").st_mode) == 0o600


# -- replacing what lower layers left -----------------------------------------------------


def test_file_replaces_a_directory_with_its_whole_subtree(root: Path) -> None:
    apply(root, [d("x"), f("x/inner", b"1"), d("x/sub"), f("x/sub/deep")])
    apply(root, [f("x", b"now a file")])
    assert (root / "x").read_bytes() == b"now a file"


def test_directory_replaces_a_file_and_back(root: Path) -> None:
    apply(root, [f("x", b"file")])
    apply(root, [d("x"), f("x/child", b"c")])
    assert (root / "x/child").read_bytes() == b"c"
    apply(root, [f("x", b"file again")])
    assert (root / "x").read_bytes() == b"file again"


def test_directory_over_directory_only_updates_attributes(root: Path) -> None:
    apply(root, [d("x", mode=0o755), f("x/kept", b"k")])
    apply(root, [d("x", mode=0o700, mtime=1_000_000_000)])
    assert (root / "x/kept").read_bytes() == b"k"
    info = os.lstat(root / "x")
    assert (stat.S_IMODE(info.st_mode), info.st_mtime) == (0o700, 1_000_000_000)


def test_directory_replaces_a_symlink_instead_of_following_it(root: Path) -> None:
    apply(root, [d("real"), f("real/a"), sym("link", "real")])
    apply(root, [d("link", mode=0o700), f("link/b", b"b")])
    assert not (root / "link").is_symlink()
    assert (root / "link/b").read_bytes() == b"b"
    assert sorted(os.listdir(root / "real")) == ["a"]


def test_symlink_and_file_replace_each_other(root: Path) -> None:
    apply(root, [f("target", b"t"), sym("x", "target")])
    apply(root, [f("x", b"plain")])
    assert not (root / "x").is_symlink()
    assert (root / "target").read_bytes() == b"t"
    apply(root, [sym("x", "elsewhere")])
    assert os.readlink(root / "x") == "elsewhere"


@pytest.mark.parametrize("replacement", ["file", "symlink", "whiteout"])
def test_a_directory_replaced_or_removed_in_the_same_layer_gets_no_times(
    root: Path, replacement: str
) -> None:
    entries = [d("x", mtime=1_000_000_000), f("x/inner", b"1"), d("y", mtime=1_100_000_000)]
    if replacement == "file":
        entries.append(f("x", b"now a file", mtime=2_000_000_000))
    elif replacement == "symlink":
        entries.append(sym("x", "y", mtime=2_000_000_000))
    else:  # a lower directory this layer met (a whiteout inside it), then whited out
        apply(root, [d("x", mtime=1_000_000_000), f("x/inner", b"1"), f("x/other")])
        entries = [f("x/.wh.other"), f(".wh.x"), d("y", mtime=1_100_000_000)]
    apply(root, entries)
    assert os.lstat(root / "y").st_mtime == 1_100_000_000
    if replacement == "whiteout":
        assert not os.path.lexists(root / "x")
        return
    assert os.lstat(root / "x").st_mtime == 2_000_000_000
    assert not stat.S_ISDIR(os.lstat(root / "x").st_mode)


def test_a_directory_made_by_an_entry_is_not_looked_up_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked: list[str] = []
    real_lstat = os.lstat

    def lstat(path: str | Path, *args: object, **kwargs: object) -> os.stat_result:
        looked.append(os.fspath(path))
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "lstat", lstat)
    apply(root, [d("usr"), d("usr/lib"), f("usr/lib/a"), f("usr/lib/b"), f("usr/c")])
    monkeypatch.undo()
    assert not [path for path in looked if path.endswith(("/usr", "/usr/lib"))]
    assert sorted(os.listdir(root / "usr/lib")) == ["a", "b"]


def test_parent_cache_follows_a_directory_replaced_by_a_symlink(root: Path) -> None:
    apply(root, [d("c"), d("c/b"), d("a"), d("a/b"), f("a/b/x", b"1")])
    apply(root, [f("a/b/first", b"f"), sym("a", "c"), f("a/b/y", b"2")])
    assert (root / "c/b/y").read_bytes() == b"2"
    assert os.readlink(root / "a") == "c"
    assert not (root / "c/b/first").exists()


# -- symlinks -------------------------------------------------------------------------------


def test_symlinks_are_kept_verbatim_absolute_relative_dangling(root: Path) -> None:
    apply(root, [sym("abs", "/usr/bin/python3"), sym("rel", "../lib/x"), sym("gone", "nowhere")])
    assert os.readlink(root / "abs") == "/usr/bin/python3"
    assert os.readlink(root / "rel") == "../lib/x"
    assert os.readlink(root / "gone") == "nowhere"


@pytest.mark.parametrize("target", ["usr/lib", "/usr/lib", "./usr/../usr/lib", "/../usr/lib"])
def test_symlinked_parent_directories_resolve_inside_the_tree(root: Path, target: str) -> None:
    apply(root, [d("usr"), d("usr/lib"), sym("lib", target)])
    apply(root, [f("lib/libc.so.6", b"elf"), d("lib/sub"), f("lib/sub/x")])
    assert (root / "usr/lib/libc.so.6").read_bytes() == b"elf"
    assert (root / "usr/lib/sub/x").exists()
    assert os.readlink(root / "lib") == target


def test_symlink_metadata(root: Path) -> None:
    apply(root, [sym("s", "t", mtime=1_100_000_000)])
    assert os.lstat(root / "s").st_mtime == 1_100_000_000


# -- hard links -----------------------------------------------------------------------------


def test_hard_links_within_one_layer_share_the_inode(root: Path) -> None:
    apply(root, [f("a", b"data", mode=0o751), hard("b", "a"), hard("/c", "./a")])
    inodes = {os.lstat(root / n).st_ino for n in "abc"}
    assert len(inodes) == 1
    assert os.lstat(root / "a").st_nlink == 3


def test_hard_link_to_a_lower_layer_file(root: Path) -> None:
    apply(root, [f("lower", b"from below")])
    stats = apply(root, [hard("upper", "lower")])
    assert os.lstat(root / "upper").st_ino == os.lstat(root / "lower").st_ino
    assert stats.hardlinks == 1


def test_hard_link_entry_does_not_reapply_metadata_to_the_target(root: Path) -> None:
    apply(root, [f("a", b"x", mode=0o644, mtime=1_000_000_000)])
    apply(root, [hard("b", "a", mode=0o777, mtime=1_900_000_000)])
    info = os.lstat(root / "a")
    assert (stat.S_IMODE(info.st_mode), info.st_mtime) == (0o644, 1_000_000_000)


def test_rewriting_one_name_of_a_hard_link_group_changes_only_that_name(root: Path) -> None:
    apply(root, [f("a", b"old"), hard("b", "a"), hard("c", "a")])
    inode = os.lstat(root / "a").st_ino
    apply(root, [f("b", b"new")])
    assert (root / "a").read_bytes() == b"old"
    assert (root / "c").read_bytes() == b"old"
    assert (root / "b").read_bytes() == b"new"
    assert os.lstat(root / "a").st_ino == os.lstat(root / "c").st_ino == inode


def test_hard_link_to_a_symlink_links_the_symlink_itself(root: Path) -> None:
    apply(root, [sym("s", "/etc/passwd"), hard("h", "s")])
    assert os.readlink(root / "h") == "/etc/passwd"
    assert os.lstat(root / "h").st_ino == os.lstat(root / "s").st_ino


def test_hard_link_through_a_symlinked_parent(root: Path) -> None:
    apply(root, [d("usr"), d("usr/bin"), sym("bin", "usr/bin"), f("usr/bin/sh", b"sh")])
    apply(root, [hard("usr/bin/dash", "bin/sh")])
    assert os.lstat(root / "usr/bin/dash").st_ino == os.lstat(root / "usr/bin/sh").st_ino


# -- shared inodes ----------------------------------------------------------------------------


def test_a_clone_can_be_changed_without_touching_the_original(tmp_path: Path) -> None:
    original = tmp_path / "chain1"
    original.mkdir()
    apply(
        original,
        [
            d("etc"),
            f("etc/passwd", b"root:x:0:0\n", mode=0o644),
            hard("etc/passwd-", "etc/passwd"),
            f("bin/tool", b"v1", mode=0o755),
            sym("bin/alias", "tool"),
            d("var", mode=0o755),
            f("var/cache", b"c"),
        ],
    )
    before = snapshot(original)
    clone = tmp_path / "chain2"
    clone_tree(original, clone)
    apply(
        clone,
        [
            f("etc/passwd", b"root:x:0:0\nuser:x:1000\n", mode=0o600),
            hard("etc/extra", "etc/passwd-"),
            f("bin/tool", b"v2", mode=0o4755),
            sym("bin/alias", "other"),
            d("var", mode=0o700, mtime=1),
            E("var/.wh.cache"),
            d("etc", mode=0o700),
        ],
    )
    assert snapshot(original) == before
    assert (clone / "bin/tool").read_bytes() == b"v2"
    assert not (clone / "var/cache").exists()


# -- modes, owners, special files, xattrs -------------------------------------------------------


def test_setuid_setgid_and_sticky_bits_are_kept(root: Path) -> None:
    apply(root, [f("su", mode=0o4755), f("wall", mode=0o2755), d("tmp", mode=0o1777)])
    assert stat.S_IMODE(os.lstat(root / "su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(root / "wall").st_mode) == 0o2755
    assert stat.S_IMODE(os.lstat(root / "tmp").st_mode) == 0o1777


@pytest.mark.root
def test_owners_are_applied_as_root(root: Path) -> None:
    apply(root, [d("home", uid=1000, gid=100), f("home/x", uid=1000, gid=1000, mode=0o6755)])
    apply(root, [sym("home/s", "x", uid=7, gid=8)])
    assert (os.lstat(root / "home").st_uid, os.lstat(root / "home").st_gid) == (1000, 100)
    info = os.lstat(root / "home/x")
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (1000, 1000, 0o6755)
    assert (os.lstat(root / "home/s").st_uid, os.lstat(root / "home/s").st_gid) == (7, 8)


def test_owners_are_skipped_and_counted_when_unprivileged(root: Path) -> None:
    mine = (os.geteuid(), os.getegid())
    layer = [f("x", uid=1234, gid=1234), f("y", uid=99, gid=99), f("m", uid=mine[0], gid=mine[1])]
    with capture_logs() as logs:
        stats = apply(root, layer, privileged=False)
    assert stats.skipped_owners == 2
    assert os.lstat(root / "x").st_uid == os.geteuid()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["entries"]) for e in warnings] == [("layer_owners_skipped", 2)]


@pytest.mark.root
def test_devices_and_fifos_as_root(root: Path) -> None:
    stats = apply(
        root,
        [
            E("dev/null", "char", major=1, minor=3, mode=0o666),
            E("dev/sda", "block", major=8, minor=0, mode=0o660),
            E("run/fifo", "fifo", mode=0o600),
        ],
    )
    null = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(null.st_mode)
    assert stat.S_IMODE(null.st_mode) == 0o666
    assert (os.major(null.st_rdev), os.minor(null.st_rdev)) == (1, 3)
    assert stat.S_ISBLK(os.lstat(root / "dev/sda").st_mode)
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert stats.specials == 3


def test_devices_are_skipped_unprivileged_but_fifos_are_made(root: Path) -> None:
    layer = [E("dev/null", "char", major=1, minor=3), E("fifo", "fifo")]
    stats = apply(root, layer, privileged=False)
    assert not (root / "dev/null").exists()
    assert stat.S_ISFIFO(os.lstat(root / "fifo").st_mode)
    assert stats.skipped_devices == 1


@pytest.mark.root
def test_xattrs_allowed_ones_are_set_others_dropped(root: Path) -> None:
    xattrs = {
        "security.capability": CAPABILITY,
        "user.note": b"hello",
        "trusted.overlay.opaque": b"y",
        "security.selinux": b"system_u:object_r:bin_t:s0",
    }
    apply(root, [f("ping", b"elf", mode=0o755, xattrs=xattrs), d("dir", xattrs={"user.d": b"1"})])
    path = os.fspath(root / "ping")
    assert os.getxattr(path, "security.capability") == CAPABILITY
    assert os.getxattr(path, "user.note") == b"hello"
    assert "trusted.overlay.opaque" not in os.listxattr(path)
    assert os.getxattr(root / "dir", "user.d") == b"1"


@pytest.mark.root
def test_capability_survives_the_owner_change(root: Path) -> None:
    apply(root, [f("ping", b"elf", uid=5, gid=5, xattrs={"security.capability": CAPABILITY})])
    assert os.getxattr(root / "ping", "security.capability") == CAPABILITY


def test_unprivileged_read_only_directories_still_receive_entries(root: Path) -> None:
    apply(root, [d("ro", mode=0o555), f("ro/a", b"a")], privileged=False)
    apply(root, [f("ro/b", b"b")], privileged=False)
    assert (root / "ro/b").read_bytes() == b"b"
    assert stat.S_IMODE(os.lstat(root / "ro").st_mode) == 0o555


# -- refusals that are not about escaping -------------------------------------------------------


def test_unknown_entry_types_are_refused(root: Path) -> None:
    with pytest.raises(HostileLayer, match="unsupported entry type") as caught:
        apply(root, [E("volume", "V")])
    assert caught.value.entry == "volume"


def test_parent_that_is_a_file_is_refused(root: Path) -> None:
    apply(root, [f("file")])
    with pytest.raises(HostileLayer, match="'file' is not a directory"):
        apply(root, [f("file/child")])
