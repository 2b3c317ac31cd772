"""Operations on a converted repository: gc removes exactly the unreachable products, prune
and delete-image unpublish, status shows the state; verify passes before and after."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.ducc import app_image, app_layer, ducc, unique, write_recipe
from tests.support.registry import LocalRegistry
from tests.support.targets import KINDS, make_target

pytestmark = pytest.mark.integration


def products(root: Path) -> set[str]:
    found = set()
    for top in (".flat", ".chains", ".layers"):
        for shard in (root / top).glob("??"):
            found |= {f"{top}/{shard.name}/{p.name}" for p in shard.iterdir() if p.is_dir()}
    return found


@pytest.fixture(params=KINDS)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, list[str]]:
    """(cvmfs_repo, repository root, publisher options)."""
    target = make_target(request.param, request, tmp_path)
    return target.repo, target.root, target.args


def test_gc_removes_exactly_the_unreachable_products(
    registry: LocalRegistry, where: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo, root, args = where
    name = unique("gc")
    pusher = registry.pusher()
    old, kept = app_image("old"), app_image("kept")
    pusher.image(f"{name}/app", "1", old)
    pusher.image(f"{name}/other", "1", kept)
    refs = [f"{registry.url}/{name}/app:1", f"{registry.url}/{name}/other:1"]
    recipe = write_recipe(tmp_path / "r.yaml", repo, refs)
    assert ducc("convert", recipe, *args).code == 0
    new = app_image("new")
    pusher.image(f"{name}/app", "1", new)  # the tag moves: old's flat, chain and layer orphan
    assert ducc("convert", recipe, *args).code == 0
    assert ducc("verify", root).code == 0
    before = products(root)

    young = ducc("gc", repo, *args, "--json")  # default grace period: nothing goes yet
    assert young.code == 0, young.stderr
    assert json.loads(young.stdout)["removed"] == []
    assert products(root) == before

    dry = json.loads(ducc("gc", repo, *args, "--grace-period", "0", "--dry-run", "--json").stdout)
    old_layer = app_layer("old").digest[7:]
    expected = {
        f".flat/{old.config_digest[7:9]}/{old.config_digest[7:]}",
        f".layers/{old_layer[:2]}/{old_layer}",
    }
    removed = set(dry["removed"])
    assert expected <= removed
    assert {p.split("/")[0] for p in removed - expected} == {".chains"}  # old's top chain
    assert len(removed) == 3
    assert products(root) == before  # a dry run removes nothing

    run = ducc("gc", repo, *args, "--grace-period", "0", "--json")
    assert set(json.loads(run.stdout)["removed"]) == removed
    assert products(root) == before - removed
    assert ducc("verify", root).code == 0
    for ref in refs:
        assert (root / ref.split("://", 1)[1] / ".singularity.d").is_dir()


def test_prune_and_delete_image_unpublish_leaving_data_to_gc(
    registry: LocalRegistry, where: tuple[str, Path, list[str]], tmp_path: Path
) -> None:
    repo, root, args = where
    name = unique("prune")
    pusher = registry.pusher()
    for tag in ("1", "2", "3"):
        pusher.image(f"{name}/app", tag, app_image(f"prune-{tag}"))
    refs = [f"{registry.url}/{name}/app:{t}" for t in ("1", "2", "3")]
    assert ducc("convert", write_recipe(tmp_path / "all.yaml", repo, refs), *args).code == 0
    simple = [r.split("://", 1)[1] for r in refs]

    smaller = write_recipe(tmp_path / "two.yaml", repo, refs[:2])
    dry = ducc("prune", smaller, *args, "--dry-run")
    assert dry.code == 0, dry.stderr
    assert f"would unpublish 1 images\n  {simple[2]}" in dry.stdout
    assert (root / simple[2]).is_symlink()

    assert ducc("prune", smaller, *args).code == 0
    assert not os.path.lexists(root / simple[2])
    assert not (root / ".metadata" / simple[2]).exists()
    store = json.loads((root / "podmanStore/overlay-images/images.json").read_text())
    assert sorted(n for i in store for n in i.get("names", [])) == sorted(simple[:2])

    deleted = ducc("delete-image", "--repo", repo, refs[1], *args)
    assert deleted.code == 0, deleted.stderr
    assert not os.path.lexists(root / simple[1])
    again = ducc("delete-image", repo, refs[1], *args)  # DUCC's argument order
    assert again.code == 1
    assert "is not published" in again.stderr
    assert ducc("verify", root).code == 0
    gc = json.loads(ducc("gc", repo, *args, "--grace-period", "0", "--json").stdout)
    assert len(gc["removed"]) == 6  # two flat trees, their top chains and their app layers
    assert len(gc["podman_images"]) == 2
    assert (root / simple[0]).resolve().is_dir()
    assert ducc("verify", root).code == 0


def test_prune_removes_a_tag_gone_from_the_registry_but_not_on_a_registry_error(
    tmp_path: Path,
) -> None:
    own = LocalRegistry(tmp_path / "registry").start()  # this test stops it on purpose
    try:
        pusher = own.pusher()
        gone = app_image("gone")
        pusher.image("v/app", "gone", gone)
        pusher.image("v/app", "stays", app_image("stays"))
        refs = [f"{own.url}/v/app:gone", f"{own.url}/v/app:stays", f"{own.url}/v/app:s*"]
        root = tmp_path / "repo"
        args = ["--publisher", "dir", "--root", str(root), "--state-dir", str(tmp_path / "s")]
        recipe = write_recipe(tmp_path / "r.yaml", "local.test", refs)
        assert ducc("convert", recipe, *args).code == 0
        pusher.delete_tag_target("v/app", gone.digest)
        run = ducc("prune", recipe, *args)
        assert run.code == 0, run.stderr
        gone_name, stays_name = (r.split("://", 1)[1] for r in refs[:2])
        assert f"unpublished 1 images\n  {gone_name}" in run.stdout
        assert (root / stays_name).is_symlink()
    finally:
        own.stop()
    offline = ducc("prune", recipe, *args)  # the registry is down: nothing is certain
    assert offline.code == 0, offline.stderr
    assert "unpublished 0 images" in offline.stdout
    assert f"kept (registry unreachable): {stays_name}" in offline.stdout
    assert (root / stays_name).is_symlink()


def test_status_shows_checks_and_history(registry: LocalRegistry, tmp_path: Path) -> None:
    name = unique("status")
    registry.pusher().image(f"{name}/app", "1", app_image("status"))
    good, bad = f"{registry.url}/{name}/app:1", f"{registry.url}/{name}/none:1"
    state = tmp_path / "s"
    args = ["--publisher", "dir", "--root", str(tmp_path / "repo"), "--state-dir", str(state)]
    ducc("convert", write_recipe(tmp_path / "r.yaml", "local.test", [good, bad]), *args)
    doc = json.loads(ducc("status", "--state-dir", state, "--json").stdout)
    by_image = {i["image"]: i for i in doc["images"]}
    assert by_image[good]["status"] == "added"
    assert by_image[good]["last_success"] is not None
    assert by_image[bad]["status"] == "failed"
    assert by_image[bad]["failures"] == 1
    assert (
        "not found" in by_image[bad]["last_error"].lower()
        or "unknown" in by_image[bad]["last_error"].lower()
    )
    (conversion,) = doc["conversions"]
    assert conversion["image"] == good
    assert conversion["bytes"] > 0
    table = ducc("status", "--state-dir", state).stdout
    assert "added" in table
    assert good in table
