"""ducc's local state is a cache of what the repository records: a damaged database, a full
state directory, or two processes sharing one never stop `convert`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.ducc import Run, app_image, ducc, unique, write_recipe
from tests.support.filesystems import fill, tmpfs
from tests.support.images import directory, file, make_image, make_layer
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration


def convert(recipe: Path, root: Path, state: Path, *extra: str | Path) -> Run:
    args = ["--publisher", "dir", "--root", root, "--state-dir", state, *extra]
    return ducc("convert", recipe, "--json", *args, timeout=120)


def test_a_damaged_state_is_moved_aside_and_nothing_is_converted_again(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("state")
    registry.pusher().image(f"{name}/app", "1", app_image("state"))
    image = f"{registry.url}/{name}/app:1"
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [image])
    root, state = tmp_path / "repo", tmp_path / "state"
    assert convert(recipe, root, state).outcomes() == {image: "added"}
    (state / "state.sqlite").write_bytes(b"\x00garbage\xff" * 4096)
    for suffix in ("-wal", "-shm"):
        (state / f"state.sqlite{suffix}").unlink(missing_ok=True)

    run = convert(recipe, root, state)
    assert run.code == 0, run.stderr
    assert run.outcomes() == {image: "unchanged"}  # the repository says it is published
    assert "state_damaged" in run.stderr
    assert str(state / "state.sqlite") in run.stderr  # the warning names the file
    assert len(list(state.glob("state.sqlite.damaged-*"))) == 1
    assert convert(recipe, root, state).code == 0  # and every run after
    status = ducc("status", "--state-dir", state, "--json")
    assert status.code == 0
    assert [i["image"] for i in status.json()["images"]] == [image]


@pytest.mark.root
def test_a_full_state_directory_does_not_stop_publishing(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("full")
    registry.pusher().image(f"{name}/app", "1", app_image("full"))
    image = f"{registry.url}/{name}/app:1"
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [image])
    with tmpfs(tmp_path / "state", "64k") as state:
        fill(state)
        run = convert(recipe, tmp_path / "repo", state, "--downloads-dir", tmp_path / "dl")
    assert run.code == 0, run.stderr
    assert run.outcomes() == {image: "added"}
    assert "state_unavailable" in run.stderr
    assert str(state / "state.sqlite") in run.stderr


def test_two_processes_sharing_a_state_directory_keep_their_blobs(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("shared")
    base = make_layer([directory("data"), file("data/blob", os.urandom(8 * 1024 * 1024))])
    images = []
    for n in range(4):
        top = make_layer([directory("etc"), file("etc/app", f"app{n}")])
        registry.pusher().image(f"{name}/app{n}", "1", make_image([base, top], cmd=["/bin/true"]))
        images.append(f"{registry.url}/{name}/app{n}:1")
    state = tmp_path / "state"
    procs = []
    for side in ("a", "b"):  # two repositories, two processes, one state directory
        recipe = write_recipe(tmp_path / f"{side}.yaml", f"{side}.test", images)
        argv = [sys.executable, "-m", "ducc", "convert", str(recipe), "--publisher", "dir"]
        argv += ["--root", str(tmp_path / side), "--state-dir", str(state)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
        assert b"4 added" in out
    assert sorted(p.name for p in (state / "downloads").iterdir()) == [".lock"]
