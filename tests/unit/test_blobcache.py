"""The blob cache: what a killed run left is removed by the next run, never while another
ducc uses the cache; two processes sharing it never remove each other's blobs."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ducc.oci.digest import Digest
from ducc.pipeline.blobcache import LOCK, BlobCache

BLOB = Digest.parse("sha256:" + "ab" * 32)


def leftovers(directory: Path) -> tuple[Path, Path]:
    """A verified blob a killed run never discarded, and a partial download."""
    cache = BlobCache(directory)
    blob = cache.path(BLOB)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"layer")
    part = blob.parent / f".{BLOB.hex}.x1y2.part"
    part.write_bytes(b"la")
    return blob, part


def test_a_run_alone_removes_what_a_killed_run_left(tmp_path: Path) -> None:
    blob, part = leftovers(tmp_path / "downloads")
    with BlobCache(tmp_path / "downloads").in_use():
        assert not blob.exists()
        assert not part.exists()
        left = sorted(p.name for p in (tmp_path / "downloads").iterdir())
        assert left[0] == LOCK
        assert [n.startswith(f"run-{os.getpid()}-") for n in left[1:]] == [True]  # its own


def test_files_that_are_not_ducc_s_are_never_removed(tmp_path: Path) -> None:
    """An operator's DUCC-era `--downloads-dir /tmp` holds other programs' files."""
    blob, _ = leftovers(tmp_path / "shared")
    (tmp_path / "shared" / "someone-elses.txt").write_text("keep me")
    (tmp_path / "shared" / "session").mkdir()
    with BlobCache(tmp_path / "shared").in_use():
        assert not blob.exists()
    assert (tmp_path / "shared" / "someone-elses.txt").read_text() == "keep me"
    assert (tmp_path / "shared" / "session").is_dir()


def test_files_of_a_ducc_using_the_cache_are_kept(tmp_path: Path) -> None:
    blob, part = leftovers(tmp_path / "downloads")
    other = os.open(tmp_path / "downloads" / LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(other, fcntl.LOCK_SH)  # what a running ducc holds
    try:
        with BlobCache(tmp_path / "downloads").in_use():
            assert blob.read_bytes() == b"layer"
            assert part.exists()
    finally:
        os.close(other)


def test_a_running_ducc_keeps_others_from_sweeping(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path / "downloads")
    with cache.in_use():
        blob, _ = leftovers(tmp_path / "downloads")  # downloaded by this run
        with BlobCache(tmp_path / "downloads").in_use():
            assert blob.exists()


def test_two_processes_sharing_the_cache_never_remove_each_others_blobs(tmp_path: Path) -> None:
    first, second = BlobCache(tmp_path / "downloads"), BlobCache(tmp_path / "downloads")
    with first.in_use(), second.in_use():  # two ducc runs (one lock each, as two processes)
        for cache in (first, second):  # both download the same base layer
            cache.path(BLOB).parent.mkdir(parents=True, exist_ok=True)
            cache.path(BLOB).write_bytes(b"layer")
        first.discard([BLOB])  # the first run's image is converted
        assert second.path(BLOB).read_bytes() == b"layer"  # the second still reads it
        assert not first.path(BLOB).exists()
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == [LOCK]  # tidy after
