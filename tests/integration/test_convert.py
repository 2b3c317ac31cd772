"""`ducc convert` end to end: real registry, both publishers (the fake cvmfs_server for
`cvmfs`), layout, publish counts, shared and changed layers, chroot into the result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ducc.oci.reference import parse_reference
from ducc.pipeline.convert import in_shard
from tests.support.ducc import app_image, app_layer, base_layer, ducc, unique, write_recipe
from tests.support.images import (
    Image,
    Index,
    file,
    hardlink,
    make_image,
    make_index,
    make_layer,
    whiteout,
)
from tests.support.podman import (
    PODMAN,
    RUNC,
    podman_configs,
    read_only_view,
    run_podman,
    unmount_below,
)
from tests.support.registry import LocalRegistry
from tests.support.targets import KINDS, Target, make_target

pytestmark = pytest.mark.integration


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return make_target(request.param, request, tmp_path)


def push_three(registry: LocalRegistry) -> tuple[str, dict[str, Image | Index]]:
    """Two images sharing a base layer and a two-platform index; their references."""
    name = unique("convert")
    pusher = registry.pusher()
    a, b = app_image("a"), app_image("b")
    arm = make_image([make_layer([file("etc/arm", "arm")]), app_layer("c")], architecture="arm64")
    c_amd = app_image("c")
    index = make_index([c_amd, arm])
    pusher.image(f"{name}/a", "1", a)
    pusher.image(f"{name}/b", "1", b)
    pusher.index(f"{name}/c", "1", index)
    refs = {f"{registry.url}/{name}/{x}:1": img for x, img in (("a", a), ("b", b), ("c", index))}
    return name, refs


def public(target: Target, ref: str) -> Path:
    return target.root / ref.split("://", 1)[1]


def test_converts_shared_layers_once_and_builds_each_chain_once(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    _, refs = push_three(registry)
    recipe = write_recipe(tmp_path / "r.yaml", target.repo, list(refs))
    run = target.convert(recipe)
    assert run.code == 0, run.stderr
    report = run.json()
    assert report["totals"]["added"] == 3
    # One ingest per distinct layer (base, app a, app b, app c); the base chain is built
    # once, then one chain per app layer on top of it.
    assert report["ingests"] == 4
    by_image = {r["image"]: r for r in report["images"]}
    a_ref, b_ref, c_ref = refs
    assert {r: by_image[r]["chains_built"] for r in refs} == {a_ref: 2, b_ref: 1, c_ref: 1}
    assert {by_image[r]["flat_method"] for r in refs} == {"chains"}
    base = base_layer()
    assert by_image[a_ref]["bytes_downloaded"] == len(base.blob) + len(app_layer("a").blob)
    assert by_image[b_ref]["bytes_downloaded"] == len(app_layer("b").blob)  # base reused
    if target.kind != "dir":
        calls = target.calls()
        assert sum(c.verb == "ingest" and c.ok for c in calls) == 4
        assert not target.in_transaction()
        # every chain and flat tree starts as a catalog-level copy: the base chain of the
        # base layer's own tree, each app chain of the base chain, each flat tree of its
        # top chain; what the publishes process is the app layers and Apptainer's files
        assert sum(c.template for c in calls) == 4 + 3
        processed = sum(c.upper_bytes for c in calls if c.verb == "publish")
        apps = sum(len(app_layer(x).tar) for x in "abc")
        assert 0 < processed < apps + 3 * 16 * 1024
        assert processed < len(base.tar) // 4

    layers = target.root / ".layers"
    assert (layers / ".cvmfscatalog").is_file()
    layer_dir = layers / base.digest[7:9] / base.digest[7:]
    assert (layer_dir / "layerfs/.cvmfscatalog").is_file()
    (info,) = json.loads((layer_dir / ".metadata/layers.json").read_text())
    assert info["diff-digest"] == base.diff_id
    origins = json.loads((layer_dir / ".metadata/origin.json").read_text())["origin"]
    assert len(origins) == 3  # a, b and c's amd64 config all use the base layer

    for ref, image in refs.items():
        link = public(target, ref)
        assert link.is_symlink()
        assert not os.readlink(link).startswith("/")
        flat = link.resolve()
        assert (flat / ".singularity.d/runscript").is_file()
        assert (flat / ".cvmfscatalog").is_file()
        meta = target.root / ".metadata" / ref.split("://", 1)[1]
        stored = (meta / "manifest.json").read_bytes()
        if isinstance(image, Image):
            assert stored == image.manifest
            assert flat.name == image.config_digest[7:]
        else:
            assert (meta / "index.json").read_bytes() == image.raw
            assert stored == image.images[0].manifest
    verified = ducc("verify", "--deep", target.root)  # contents of every product agree
    assert verified.code == 0, verified.stdout


@pytest.mark.root
def test_flat_tree_runs_a_program_with_chroot(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    name = unique("chroot")
    registry.pusher().image(f"{name}/app", "1", app_image("hello from the flat tree"))
    ref = f"{registry.url}/{name}/app:1"
    assert target.convert(write_recipe(tmp_path / "r.yaml", target.repo, [ref])).code == 0
    done = subprocess.run(
        ["chroot", public(target, ref), "/bin/sh", "-c", "cat /etc/app; echo $0"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "hello from the flat tree/bin/sh\n"


def test_update_of_the_top_layer_downloads_and_ingests_only_that_layer(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    name = unique("update")
    pusher = registry.pusher()
    pusher.image(f"{name}/app", "1", app_image("v1"))
    ref = f"{registry.url}/{name}/app:1"
    recipe = write_recipe(tmp_path / "r.yaml", target.repo, [ref])
    assert target.convert(recipe).code == 0
    first_flat = public(target, ref).resolve()

    unchanged = target.convert(recipe)
    assert unchanged.json()["totals"]["unchanged"] == 1
    assert unchanged.json()["publishes"] == 0

    v2 = app_image("v2")
    pusher.image(f"{name}/app", "1", v2)
    run = target.convert(recipe)
    assert run.code == 0, run.stderr
    (result,) = run.json()["images"]
    assert result["outcome"] == "updated"
    assert result["bytes_downloaded"] == len(app_layer("v2").blob)
    assert (result["layers_ingested"], result["chains_built"]) == (1, 1)
    if target.kind != "dir":
        # what the stratum 0 processes: the new layer's chain and Apptainer's files, not
        # the image again (its chain and flat tree are catalog-level copies)
        since = [c for c in target.calls() if c.verb == "publish"][-4:]
        processed = sum(c.upper_bytes for c in since)
        assert processed < len(app_layer("v2").tar) + 16 * 1024
    flat = public(target, ref).resolve()
    assert flat.name == v2.config_digest[7:]
    assert (flat / "etc/app").read_text() == "v2"
    assert first_flat.is_dir()  # the old flat tree stays until gc
    assert ducc("verify", target.root).code == 0


def test_multi_arch_publishes_a_variant_link_and_one_tree_per_platform(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    _, refs = push_three(registry)
    c_ref = list(refs)[2]
    run = target.convert(write_recipe(tmp_path / "r.yaml", target.repo, [c_ref]), "-m")
    assert run.code == 0, run.stderr
    simple = c_ref.split("://", 1)[1]
    link = target.root / simple
    depth = simple.count("/")
    assert os.readlink(link) == "../" * depth + f".multiarch/$(CVMFS_ARCH:-amd64)/{simple}"
    amd = (target.root / ".multiarch/amd64" / simple).resolve()
    arm = (target.root / ".multiarch/arm64" / simple).resolve()
    assert (amd / "etc/app").read_text() == "c"
    assert (arm / "etc/arm").read_text() == "arm"
    assert os.readlink(target.root / ".multiarch/aarch64") == "arm64"
    assert (target.root / ".metadata/.multiarch/arm64" / simple / "manifest.json").is_file()
    assert ducc("verify", target.root).code == 0


def test_dry_run_touches_nothing(registry: LocalRegistry, target: Target, tmp_path: Path) -> None:
    name = unique("dry")
    registry.pusher().image(f"{name}/app", "1", app_image("dry"))
    recipe = write_recipe(tmp_path / "r.yaml", target.repo, [f"{registry.url}/{name}/app:1"])
    before = sorted(p.name for p in target.root.iterdir()) if target.root.exists() else []
    run = ducc("convert", recipe, *target.args, "--dry-run")
    assert run.code == 0, run.stderr
    assert "1 would be added" in run.stdout
    after = sorted(p.name for p in target.root.iterdir()) if target.root.exists() else []
    assert after == before
    assert not any(c.verb == "transaction" for c in target.calls())


@pytest.mark.parametrize("target", ["dir", "cvmfs"], indirect=True)  # not about the server
def test_failures_are_reported_and_ignore_errors_keeps_exit_zero(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    name = unique("fail")
    registry.pusher().image(f"{name}/app", "1", app_image("ok"))
    good = f"{registry.url}/{name}/app:1"
    missing = f"{registry.url}/{name}/missing:1"
    recipe = write_recipe(tmp_path / "r.yaml", target.repo, [good, missing])
    run = target.convert(recipe)
    assert run.code == 1
    assert run.outcomes() == {good: "added", missing: "failed"}
    ignore = [f"{registry.url}/{name}/m*"]
    ignoring = write_recipe(tmp_path / "i.yaml", target.repo, [good, missing], ignoreErrors=ignore)
    run = target.convert(ignoring)
    assert run.code == 0, run.stdout
    (failed,) = [r for r in run.json()["images"] if r["outcome"] == "failed"]
    assert failed["ignored"]
    assert "missing" in failed["error"]


def _shard_sizes(refs: list[str]) -> tuple[int, int]:
    parsed = [parse_reference(r) for r in refs]
    first = sum(in_shard(r, (0, 2)) for r in parsed)
    return first, len(parsed) - first


@pytest.mark.parametrize("target", ["dir", "cvmfs"], indirect=True)  # not about the server
def test_sharding_splits_images_between_publishers(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    name = unique("shard")
    pusher = registry.pusher()
    refs: list[str] = []
    # The split hashes the name, and the name holds a random port: push tags until both
    # shards have at least two images, so neither side can pass by being empty.
    while len(refs) < 6 or min(_shard_sizes(refs)) < 2:
        n = len(refs)
        pusher.image(f"{name}/app", f"t{n}", app_image(f"s{n}"))
        refs.append(f"{registry.url}/{name}/app:t{n}")
    recipe = write_recipe(tmp_path / "r.yaml", target.repo, [f"{registry.url}/{name}/app:t*"])
    first = target.convert(recipe, "--shard", "0/2").outcomes()
    second = target.convert(recipe, "--shard", "1/2").outcomes()
    assert set(first).isdisjoint(second)
    assert set(first) | set(second) == set(refs)
    assert set(first.values()) == set(second.values()) == {"added"}


@pytest.mark.root
@pytest.mark.skipif(PODMAN is None, reason="podman is not installed")
@pytest.mark.parametrize(
    "target", ["dir", pytest.param("real", marks=pytest.mark.real_cvmfs)], indirect=True
)
def test_podman_lists_and_runs_converted_images(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    """The real podman reads the store as clients see it: read-only (/cvmfs/<repo>/...)."""
    name = unique("podman")
    pusher = registry.pusher()
    pusher.image(f"{name}/app", "1", app_image("from podman"))
    pusher.image(f"{name}/app", "2", app_image("second"))
    refs = [f"{registry.url}/{name}/app:1", f"{registry.url}/{name}/app:2"]
    run = target.convert(write_recipe(tmp_path / "r.yaml", target.repo, refs))
    assert run.code == 0, run.stderr
    work = Path(tempfile.mkdtemp(prefix="ducc-podman-"))  # podman stalls under long paths
    try:
        view = read_only_view(target.root, work / "cvmfs")
        env = podman_configs(work, view / "podmanStore")
        listed = run_podman(work, env, "images", "--format", "{{.Repository}}:{{.Tag}}")
        assert set(listed.stdout.split()) == {r.split("://", 1)[1] for r in refs}, listed.stderr
        if RUNC is not None:
            ran = run_podman(work, env, "run", "--rm", "--network", "none", refs[0].split("://")[1])
            assert ran.stdout == "from podman", ran.stderr
    finally:
        unmount_below(work)
        shutil.rmtree(work)


def test_hard_link_to_a_file_of_a_lower_layer(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    name = unique("hardlink")
    lower = make_layer([file("data", "shared content", mode=0o640)])
    upper = make_layer([hardlink("link", "data"), file("other", "x")])
    image = make_image([base_layer(), lower, upper])
    registry.pusher().image(f"{name}/app", "1", image)
    ref = f"{registry.url}/{name}/app:1"
    run = target.convert(write_recipe(tmp_path / "r.yaml", target.repo, [ref]))
    assert run.code == 0, run.stderr
    flat = public(target, ref).resolve()
    assert (flat / "link").read_text() == "shared content"
    same_inode = (flat / "link").stat().st_ino == (flat / "data").stat().st_ino
    assert same_inode == (target.kind == "dir")  # CernVM-FS breaks every hard link up
    layerfs = target.root / ".layers" / upper.digest[7:9] / upper.digest[7:] / "layerfs"
    assert (layerfs / "link").read_text() == "shared content"  # copied from the layer below
    assert not (layerfs / "data").exists()
    assert ducc("verify", target.root).code == 0


def test_server_overlay_merges_flat_trees_on_the_server(
    registry: LocalRegistry, target: Target, tmp_path: Path
) -> None:
    name = unique("overlay")
    gone = make_layer([file("etc/gone", "x"), file("etc/kept", "lower")])
    top = make_layer([whiteout("etc/gone"), file("etc/kept", "upper")])
    registry.pusher().image(f"{name}/app", "1", make_image([base_layer(), gone, top]))
    ref = f"{registry.url}/{name}/app:1"
    recipe = write_recipe(tmp_path / "r.yaml", target.repo, [ref])
    run = target.convert(recipe, "--server-overlay")
    if target.kind == "dir":
        assert run.code == 2
        assert "--server-overlay needs the cvmfs publisher" in run.stderr
        return
    assert run.code == 2  # CernVM-FS 2.11.5 (the real one here, and the fake) has no overlay
    assert "this cvmfs_server has no `overlay` command" in run.stderr
    if target.fake is None:
        return
    run = target.convert(recipe, env={"FAKE_CVMFS_OVERLAY": "1"})  # a newer server
    assert run.code == 0, run.stderr
    assert target.fake.count("overlay") == 1  # detected and used by default
    (result,) = run.json()["images"]
    assert (result["flat_method"], result["chains_built"]) == ("overlay", 0)
    assert run.json()["publishes"] == 2  # the overlay, then the image's final transaction
    flat = public(target, ref).resolve()
    assert (flat / "etc/kept").read_text() == "upper"
    assert not (flat / "etc/gone").exists()
    assert not (flat / "etc/.wh.gone").exists()
    assert (flat / ".singularity.d/runscript").is_file()
    assert not (target.root / ".chains").exists()
    assert ducc("verify", "--deep", target.root).code == 0
