"""`ducc verify` on what DUCC left: Go records, manifest lists recorded per platform only,
and DUCC's older per-layer podman store are all accepted; damage in them is still found."""

from __future__ import annotations

import shutil
from pathlib import Path

from ducc.repository.verify import verify
from tests.support.ducc_layout import DuccRepository, hexof
from tests.support.images import file, make_image, make_index, make_layer

HOST = "registry.test"
APP = make_image([make_layer([file("base", "1")]), make_layer([file("app", "1")])])
AMD = make_image([make_layer([file("amd", "1")])])
ARM = make_image([make_layer([file("arm", "1")])], architecture="arm64", variant="v8")


def _repo(tmp_path: Path) -> DuccRepository:
    repo = DuccRepository(tmp_path / "repo", HOST)
    name = repo.publish("team/app", "1", APP)
    repo.podman_per_layer(name, APP)
    repo.publish_list("team/multi", "1", make_index([AMD, ARM]), ["amd64"])
    repo.publish_multi_arch("team/multi", "2", make_index([AMD, ARM]), ["amd64", "arm64:v8"])
    return repo


def test_a_repository_as_ducc_left_it_verifies(tmp_path: Path) -> None:
    report = verify(_repo(tmp_path).root)
    assert report.problems == []
    assert report.counts["image"] == 3


def test_a_missing_layer_of_a_platform_record_is_found(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    blob = hexof(ARM.layers[0].digest)
    shutil.rmtree(repo.root / ".layers" / blob[:2] / blob / "layerfs")
    problems = verify(repo.root).problems
    assert problems == [
        f"{HOST}/team/multi:2: layer {ARM.layers[0].digest} is missing or incomplete"
    ]


def test_a_podman_layer_pointing_at_an_incomplete_layer_is_found(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    blob = hexof(APP.layers[0].digest)
    (repo.root / ".layers" / blob[:2] / blob / ".metadata" / "layers.json").unlink()
    problems = verify(repo.root).problems
    assert any("podman store: layer" in p and "incomplete layer" in p for p in problems)
    assert any(f"{HOST}/team/app:1: layer" in p for p in problems)


def test_an_unreadable_record_is_a_problem_naming_it(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo.root / ".metadata" / HOST / "team/app:1" / "manifest.json").write_text("{")
    problems = verify(repo.root).problems
    assert problems == [
        f"{HOST}/team/app:1: {repo.root}/.metadata/{HOST}/team/app:1: manifest.json is not JSON"
    ]
