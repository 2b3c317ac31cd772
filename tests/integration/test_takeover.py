"""Taking over a repository DUCC populated, as an operator does after stopping DUCC.

A fixture builds the repository in DUCC's exact layout (`tests/support/ducc_layout.py`: Go
records, DUCC's chains, both kinds of DUCC podman store, manifest lists recorded under
`.metadata/.multiarch/`, `--multi-arch` links under DUCC's raw labels) from images pushed to
the local registry, named through a counting proxy in front of it. Then `ducc verify`,
`gc --dry-run`, `gc`, `convert` (twice), `prune` and `prune-images` run on it: nothing of a
recorded image is removed or changed, and no blob is downloaded again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ducc import app_image, ducc, unique
from tests.support.ducc_layout import DuccRepository, chain_ids, hexof, snapshot
from tests.support.faultproxy import FaultProxy
from tests.support.images import Image, file, make_image, make_index, make_layer
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration

REPO = "takeover.test"


@dataclass
class Takeover:
    root: Path
    args: list[str]
    proxy: FaultProxy
    names: dict[str, str]  # what -> registry/repository:tag
    images: dict[str, Image]
    recipe: Path  # the single-platform images
    multiarch: Path  # the tag DUCC converted with --multi-arch
    orphan_layer: str
    orphan_chain: str

    def blob_gets(self) -> int:
        return self.proxy.count(kind="blob", method="GET")


def _recipe(path: Path, host: str, refs: list[str]) -> Path:
    """A recipe as DUCC's operators wrote them: no `version:` key."""
    lines = [f"cvmfs_repo: '{REPO}'", "input:", *(f"  - 'http://{host}/{r}'" for r in refs)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def takeover(registry: LocalRegistry, proxy: FaultProxy, tmp_path: Path) -> Takeover:
    base = unique("takeover")
    images = {
        "app": app_image("take-app"),
        "tool": app_image("take-tool", fmt="docker"),
        "list-amd64": app_image("take-list-amd64"),
        "list-arm64": app_image("take-list-arm64", architecture="arm64", variant="v8"),
        "multi-amd64": app_image("take-multi-amd64"),
        "multi-arm64": app_image("take-multi-arm64", architecture="arm64", variant="v8"),
        "multi-arm": app_image("take-multi-arm", architecture="arm"),
    }
    listed = make_index([images["list-amd64"], images["list-arm64"]], fmt="docker")
    multi = make_index([images["multi-amd64"], images["multi-arm64"], images["multi-arm"]])
    pusher = registry.pusher()
    pusher.image(f"{base}/app", "1", images["app"])
    pusher.image(f"{base}/tool", "1", images["tool"])
    pusher.index(f"{base}/multi", "1", listed)
    pusher.index(f"{base}/multi", "2", multi)

    repo = DuccRepository(tmp_path / "repo", proxy.host)
    names = {
        "app": repo.publish(f"{base}/app", "1", images["app"]),
        "tool": repo.publish(f"{base}/tool", "1", images["tool"]),
        "list": repo.publish_list(f"{base}/multi", "1", listed, ["amd64"]),
        "multi": repo.publish_multi_arch(f"{base}/multi", "2", multi, ["amd64", "arm64:v8", "arm"]),
    }
    repo.podman_per_layer(names["app"], images["app"])
    repo.podman_flat(names["tool"], images["tool"])
    orphan = make_image([make_layer([file("gone", "an image DUCC unpublished")])])
    repo.layer(orphan.layers[0], orphan.config_digest)
    repo.chains(orphan)
    layer = hexof(orphan.layers[0].digest)
    chain = chain_ids(orphan)[0]
    state = tmp_path / "state"
    args = ["--publisher", "dir", "--root", str(repo.root), "--state-dir", str(state)]
    tags = [f"{base}/app:1", f"{base}/tool:1", f"{base}/multi:1"]
    return Takeover(
        root=repo.root,
        args=args,
        proxy=proxy,
        names=names,
        images=images,
        recipe=_recipe(tmp_path / "recipe.yaml", proxy.host, tags),
        multiarch=_recipe(tmp_path / "multiarch.yaml", proxy.host, [f"{base}/multi:2"]),
        orphan_layer=f".layers/{layer[:2]}/{layer}",
        orphan_chain=f".chains/{chain[:2]}/{chain}",
    )


def _resolved(root: Path, found: dict[str, str]) -> dict[str, str]:
    """Where each link of a snapshot leads (variant links: their text)."""
    return {
        path: os.fspath((root / path).resolve()) if "$(" not in what else what
        for path, what in found.items()
        if what.startswith("-> ")
    }


def _assert_kept(root: Path, before: dict[str, str], links: dict[str, str]) -> None:
    """Nothing DUCC made is gone or changed; every link still leads where it led."""
    after = snapshot(root)
    gone = sorted(set(before) - set(after))
    assert gone == [], gone[:10]
    changed = [p for p, what in before.items() if not what.startswith("-> ") and after[p] != what]
    assert changed == [], changed[:10]
    assert _resolved(root, {p: after[p] for p in links}) == links


def test_a_repository_ducc_filled_is_taken_over_without_loss_or_download(
    takeover: Takeover,
) -> None:
    t = takeover
    verified = ducc("verify", t.root)
    assert verified.code == 0, verified.stdout + verified.stderr
    assert "4 images" in verified.stdout

    dry = ducc("gc", REPO, *t.args, "--grace-period", "0", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    report = dry.json()
    assert report["removed"] == [t.orphan_layer]  # what no record reaches: DUCC's leftover
    assert report["unknown_chains"] == [t.orphan_chain]  # kept: not a chain ducc built
    before = snapshot(t.root)
    before.pop(t.orphan_layer)
    before = {p: w for p, w in before.items() if not p.startswith(t.orphan_layer + "/")}
    links = _resolved(t.root, before)

    swept = ducc("gc", REPO, *t.args, "--grace-period", "0", "--json")
    assert swept.code == 0, swept.stderr
    assert swept.json()["removed"] == [t.orphan_layer]
    assert (t.root / t.orphan_chain).is_dir()
    _assert_kept(t.root, before, links)

    preview = ducc("convert", t.recipe, *t.args, "--dry-run")
    assert preview.code == 0, preview.stderr
    assert "3 would be adopted" in preview.stdout
    first = ducc("convert", t.recipe, *t.args, "--json")
    assert first.code == 0, first.stderr
    assert set(first.outcomes().values()) == {"adopted"}
    assert (first.json()["ingests"], first.json()["publishes"]) == (0, 3)  # one per image
    multi = ducc("convert", "-m", t.multiarch, *t.args, "--json")
    assert multi.code == 0, multi.stderr
    assert list(multi.outcomes().values()) == ["adopted"]
    assert t.blob_gets() == 0  # every image adopted from the registry's manifests alone
    _assert_kept(t.root, before, links)
    _assert_records_rewritten(t)

    assert ducc("verify", t.root).code == 0
    again = ducc("gc", REPO, *t.args, "--grace-period", "0", "--json")
    assert again.json()["removed"] == []
    assert t.orphan_chain in again.json()["unknown_chains"]  # DUCC's chains stay
    second = ducc("convert", t.recipe, *t.args, "--json")
    assert set(second.outcomes().values()) == {"unchanged"}
    assert t.blob_gets() == 0

    pruned = ducc("prune", t.recipe, t.multiarch, *t.args, "--dry-run")
    assert pruned.code == 0, pruned.stderr
    assert f"{REPO}: would unpublish 0 images" in pruned.stdout
    ducc_spelling = ducc("prune-images", REPO, t.recipe, t.multiarch, *t.args)
    assert ducc_spelling.code == 0, ducc_spelling.stderr
    assert f"{REPO}: unpublished 0 images" in ducc_spelling.stdout
    _assert_kept(t.root, before, links)
    assert t.blob_gets() == 0


def _assert_records_rewritten(t: Takeover) -> None:
    """Each record now holds the registry's bytes (ducc's form); DUCC's records of the
    manifest lists it replaced are gone, those of platforms it did not convert stay."""
    metadata = t.root / ".metadata"
    app = metadata / t.names["app"]
    assert (app / "manifest.json").read_bytes() == t.images["app"].manifest
    assert (app / "config.json").read_bytes() == t.images["app"].config  # from podman's copy
    listed = metadata / t.names["list"]
    assert (listed / "manifest.json").read_bytes() == t.images["list-amd64"].manifest
    assert (listed / "index.json").is_file()
    assert not (metadata / ".multiarch" / "amd64" / t.names["list"]).exists()
    multi = metadata / ".multiarch"  # DUCC's spellings kept: clients and aliases use them
    assert (multi / "arm64:v8" / t.names["multi"] / "manifest.json").read_bytes() == (
        t.images["multi-arm64"].manifest
    )
    assert (multi / "arm" / t.names["multi"] / "manifest.json").read_bytes() == (
        t.images["multi-arm"].manifest
    )
    assert not (multi / "arm64").exists()
    assert not (multi / "arm:v7").exists()
    variant = os.readlink(t.root / t.names["multi"])
    assert "$(CVMFS_ARCH:-amd64)" in variant


def test_gc_stops_at_a_record_it_cannot_read_and_removes_nothing(takeover: Takeover) -> None:
    t = takeover
    (t.root / ".metadata" / t.names["app"] / "manifest.json").write_text("{garbage")
    before = snapshot(t.root)
    run = ducc("gc", REPO, *t.args, "--grace-period", "0")
    assert run.code == 1
    assert "1 record of published images cannot be read; nothing was removed" in run.stderr
    assert t.names["app"] in run.stderr
    assert snapshot(t.root) == before  # not even DUCC's orphan layer went
    for layer in t.images["app"].layers:
        blob = hexof(layer.digest)
        assert (t.root / ".layers" / blob[:2] / blob / "layerfs").is_dir()
    verified = ducc("verify", t.root)
    assert verified.code == 1
    assert f"{t.names['app']}: " in verified.stdout
    assert "manifest.json is not JSON" in verified.stdout
