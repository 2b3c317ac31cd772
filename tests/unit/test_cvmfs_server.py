"""The cvmfs_server argv builders are pure: each call ducc makes, spelled exactly."""

from __future__ import annotations

import pytest

from ducc.publish.cvmfs_server import (
    DELETE_BATCH,
    abort_argv,
    has_command,
    ingest_delete_argv,
    ingest_tar_argv,
    list_argv,
    overlay_argv,
    parse_list,
    publish_argv,
    transaction_argv,
)


def test_list() -> None:
    assert list_argv() == ["cvmfs_server", "list"]


def test_transaction_plain_lease_and_templates() -> None:
    assert transaction_argv("unpacked.cern.ch") == [
        "cvmfs_server",
        "transaction",
        "unpacked.cern.ch",
    ]
    assert transaction_argv("r.ch", ".flat/ab") == ["cvmfs_server", "transaction", "r.ch/.flat/ab"]
    assert transaction_argv("r.ch", template=(".chains/aa/1", ".chains/bb/2")) == [
        "cvmfs_server",
        "transaction",
        "-T",
        "/.chains/aa/1=/.chains/bb/2",
        "r.ch",
    ]


def test_publish_and_abort_are_forced_and_scoped() -> None:
    assert publish_argv("r.ch") == ["cvmfs_server", "publish", "r.ch"]
    assert publish_argv("r.ch", "/.layers/ab/") == ["cvmfs_server", "publish", "r.ch/.layers/ab"]
    assert abort_argv("r.ch") == ["cvmfs_server", "abort", "-f", "r.ch"]


def test_ingest_tar_from_stdin() -> None:
    assert ingest_tar_argv("r.ch", ".layers/ab/abcd/layerfs") == [
        "cvmfs_server",
        "ingest",
        "--catalog",
        "-t",
        "-",
        "-b",
        ".layers/ab/abcd/layerfs",
        "r.ch",
    ]
    argv = ingest_tar_argv("r.ch", "x", catalog=False)
    assert argv == ["cvmfs_server", "ingest", "-t", "-", "-b", "x", "r.ch"]
    assert "--tolerate-missing-hardlinks" not in argv  # no such option in cvmfs 2.11.5


def test_overlay_is_detected_in_the_command_list() -> None:
    listed = "Usage: cvmfs_server COMMAND\n\nSupported Commands:\n  mkfs   [-w url]\n"
    assert not has_command(listed, "overlay")
    assert not has_command(
        listed + "                  [-f union filesystem overlayfs]\n", "overlay"
    )
    assert has_command(listed + "  overlay         -l layers -d dest\n", "overlay")


def test_ingest_delete_several_paths() -> None:
    assert ingest_delete_argv("r.ch", ["/a/b", "c"]) == [
        "cvmfs_server",
        "ingest",
        "--delete",
        "a/b",
        "--delete",
        "c",
        "r.ch",
    ]
    with pytest.raises(ValueError, match="at least one"):
        ingest_delete_argv("r.ch", [])
    assert DELETE_BATCH == 50


def test_overlay() -> None:
    assert overlay_argv("r.ch", [".layers/a/1/layerfs", ".layers/b/2/layerfs"], ".flat/c/3") == [
        "cvmfs_server",
        "overlay",
        "-l",
        ".layers/a/1/layerfs,.layers/b/2/layerfs",
        "-d",
        ".flat/c/3",
        "r.ch",
    ]


def test_custom_executable() -> None:
    assert publish_argv("r", executable="/opt/cvmfs_server")[0] == "/opt/cvmfs_server"


def test_list_is_matched_exactly_not_as_substring() -> None:
    repos = parse_list(
        "unpacked.cern.ch (stratum0 / local)\n"
        "test.unpacked.cern.ch (stratum0 / local - in transaction)\n"
        "garbage line\n"
    )
    assert set(repos) == {"unpacked.cern.ch", "test.unpacked.cern.ch"}
    assert not repos["unpacked.cern.ch"].in_transaction
    assert repos["test.unpacked.cern.ch"].in_transaction
    assert "cern.ch" not in repos


def test_ingest_replacing_a_tree_deletes_it_in_the_same_call() -> None:
    argv = ingest_tar_argv("r.ch", ".layers/ab/abcd/layerfs", delete=[".layers/ab/abcd/layerfs"])
    assert argv[:4] == ["cvmfs_server", "ingest", "--delete", ".layers/ab/abcd/layerfs"]
    assert argv[-3:] == ["-b", ".layers/ab/abcd/layerfs", "r.ch"]
