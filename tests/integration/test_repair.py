"""Damaged products are found and rebuilt: `verify` flags what a few stats and small reads
show, `verify --deep` what only the contents show; a plain `convert` rebuilds the first kind,
`convert --repair` both."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.ducc import Run, ducc, unique, write_recipe
from tests.support.images import Image, directory, file, make_image, make_layer
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration


def two_layers(name: str) -> Image:
    base = make_layer([directory("usr"), file(f"usr/{name}-base", f"{name} base")])
    app = make_layer([directory("etc"), file("etc/app", name), file(f"etc/{name}", name)])
    return make_image([base, app], cmd=["/bin/true"])


class Repo:
    def __init__(self, tmp_path: Path, images: list[str]) -> None:
        self.recipe = write_recipe(tmp_path / "r.yaml", "local.test", images)
        self.root, self.state = tmp_path / "repo", tmp_path / "state"

    def convert(self, *extra: str) -> Run:
        args = ["--publisher", "dir", "--root", str(self.root), "--state-dir", str(self.state)]
        return ducc("convert", self.recipe, "--json", *args, *extra)

    def verify(self, *extra: str) -> list[str]:
        run = ducc("verify", *extra, "--json", self.root)
        problems: list[str] = run.json()[str(self.root)]["problems"]
        assert run.code == (1 if problems else 0)
        return problems

    def layer(self, image: Image, index: int) -> Path:
        digest = image.layers[index].digest[7:]
        return self.root / ".layers" / digest[:2] / digest

    def record(self, ref: str) -> Path:
        return self.root / ".metadata" / ref.split("://", 1)[1]

    def flat(self, ref: str) -> Path:
        return (self.root / ref.split("://", 1)[1]).resolve()


def test_damaged_products_are_flagged_and_rebuilt(registry: LocalRegistry, tmp_path: Path) -> None:
    name = unique("repair")
    images = {tag: two_layers(f"{name}{tag}") for tag in ("a", "b", "c", "d", "e")}
    for tag, image in images.items():
        registry.pusher().image(f"{name}/app", tag, image)
    refs = {tag: f"{registry.url}/{name}/app:{tag}" for tag in ("a", "b", "d", "e")}
    repo = Repo(tmp_path, list(refs.values()))
    assert set(repo.convert().outcomes().values()) == {"added"}
    a, b, d = images["a"], images["b"], images["d"]
    flat_a = repo.flat(refs["a"])

    # What only the contents show.
    (flat_a / "etc" / "app").unlink()
    (repo.layer(a, 1) / "layerfs" / "etc" / f"{name}a").unlink()
    (repo.layer(b, 1) / "layerfs" / "etc" / "app").write_text("flipped")
    # What a few stats and small reads show.
    shutil.rmtree(repo.layer(b, 0) / "layerfs")
    (repo.layer(d, 0) / ".metadata" / "layers.json").unlink()
    (repo.record(refs["d"]) / "config.json").write_bytes(b"")
    (repo.record(refs["e"]) / "manifest.json").write_bytes(images["c"].manifest)

    cheap = repo.verify()
    assert any(f"layer {b.layers[0].digest} is missing" in p for p in cheap)
    assert any(f"layer {d.layers[0].digest} is missing" in p for p in cheap)
    assert any("config.json is not the config" in p for p in cheap)
    assert any("manifest.json names config" in p for p in cheap)
    assert not any("etc/app" in p for p in cheap)

    deep = repo.verify("--deep")
    assert any(f"flat tree {flat_a}: etc/app: missing" in p for p in deep)
    assert any(f"{repo.layer(a, 1)}: etc/{name}a: missing" in p for p in deep)
    assert any(f"{repo.layer(b, 1)}: etc/app: differs" in p for p in deep)

    plain = repo.convert()
    assert plain.outcomes() == {
        refs["a"]: "unchanged",  # its damage needs contents read: --repair
        refs["b"]: "updated",
        refs["d"]: "updated",
        refs["e"]: "updated",
    }
    after_plain = repo.verify("--deep")
    assert not [p for p in after_plain if "config.json" in p or "manifest.json" in p]
    assert not [p for p in after_plain if "is missing or incomplete" in p]
    assert any("etc/app: missing" in p for p in after_plain)

    repaired = repo.convert("--repair")
    assert repaired.code == 0, repaired.stderr
    assert repaired.outcomes() == {
        refs["a"]: "updated",
        refs["b"]: "updated",
        refs["d"]: "unchanged",
        refs["e"]: "unchanged",
    }
    assert repo.verify("--deep") == []
    assert (repo.flat(refs["a"]) / "etc" / "app").read_text() == f"{name}a"
    assert (repo.layer(a, 1) / "layerfs" / "etc" / f"{name}a").read_text() == f"{name}a"
    assert (repo.layer(b, 1) / "layerfs" / "etc" / "app").read_text() == f"{name}b"
    config = json.loads((repo.record(refs["d"]) / "config.json").read_bytes())
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in d.layers]
    assert set(repo.convert("--repair").outcomes().values()) == {"unchanged"}


def test_a_file_deleted_from_a_chain_is_flagged_and_the_chain_rebuilt_when_needed(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("chain")
    image = two_layers(name)
    registry.pusher().image(f"{name}/app", "1", image)
    ref = f"{registry.url}/{name}/app:1"
    repo = Repo(tmp_path, [ref])
    repo.convert()
    (chain,) = [p for p in (repo.root / ".chains").glob("*/*") if (p / "etc").is_dir()]
    (chain / "etc" / "app").unlink()
    assert repo.verify() == []
    assert any(f"chain {chain}: etc/app: missing" in p for p in repo.verify("--deep"))
    assert repo.convert("--repair").outcomes() == {ref: "updated"}
    assert repo.verify("--deep") == []
