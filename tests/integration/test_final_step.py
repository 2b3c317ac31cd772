"""The final step of an image (podman entry, links, record) through the directory publisher:
an image whose final step fails is not visible at all, and names that fill a whole file
name (up to 255 bytes) are published."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.ducc import Run, app_image, ducc, unique, write_recipe
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration


def convert(tmp_path: Path, images: list[str]) -> Run:
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", images)
    root, state = tmp_path / "repo", tmp_path / "s"
    return ducc(
        "convert", recipe, "--json", "--publisher", "dir", "--root", root, "--state-dir", state
    )


def podman_names(root: Path) -> list[str]:
    store = root / "podmanStore" / "overlay-images" / "images.json"
    entries = json.loads(store.read_text()) if store.exists() else []
    return sorted(name for entry in entries for name in entry.get("names", []))


def test_an_image_whose_final_step_fails_is_not_visible(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("final")
    registry.pusher().image(f"{name}/app", "1", app_image("final"))
    image = f"{registry.url}/{name}/app:1"
    root = tmp_path / "repo"
    in_the_way = root / ".metadata" / registry.host / name  # the record's directory
    in_the_way.parent.mkdir(parents=True)
    in_the_way.write_text("a file where the record's directory goes\n")
    run = convert(tmp_path, [image])
    assert run.outcomes() == {image: "failed"}
    public = root / image.split("://", 1)[1]
    assert not os.path.lexists(public)  # no public link
    assert podman_names(root) == []  # and no podman entry naming it
    assert ducc("verify", root).code == 0
    in_the_way.unlink()
    assert convert(tmp_path, [image]).outcomes() == {image: "added"}
    assert podman_names(root) == [image.split("://", 1)[1]]


def test_names_that_fill_a_file_name_are_published(registry: LocalRegistry, tmp_path: Path) -> None:
    repository = unique("n").replace("-", "") + "a" * 190  # 200 characters
    images = []
    for length in (242, 248, 255):  # bytes of `<repository>:<tag>`, the public path's name
        tag = "t" * (length - len(repository) - 1)
        registry.pusher().image(repository, tag, app_image(f"len{length}"))
        images.append(f"{registry.url}/{repository}:{tag}")
    run = convert(tmp_path, images)
    assert set(run.outcomes().values()) == {"added"}, run.stdout
    root = tmp_path / "repo"
    for image in images:
        assert (root / image.split("://", 1)[1] / "etc" / "app").is_file()
    assert podman_names(root) == sorted(i.split("://", 1)[1] for i in images)
    assert ducc("verify", root).code == 0
