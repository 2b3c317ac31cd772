"""DUCC's command lines, recipes and environment run against a real registry: a recipe DUCC
tolerated converts what it can, `DUCC_<R>_PROXY` sends everything through the proxy, DUCC's
flags of `convert-single-image`, `prune-images REPO WISHLIST` and `loop $RECIPE_FILE` work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.ducc import app_image, ducc, unique
from tests.support.faultproxy import FaultProxy
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration

SECRET = "Pw-takeover-proxy-5c1e"


def _args(tmp_path: Path) -> list[str]:
    root, state = tmp_path / "repo", tmp_path / "state"
    return ["--publisher", "dir", "--root", str(root), "--state-dir", str(state)]


def test_a_recipe_ducc_tolerated_converts_every_entry_it_can(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("lenient")
    pusher = registry.pusher()
    for tag in ("1.0", "1.1", "2.0"):
        pusher.image(f"{name}/app", tag, app_image(f"lenient-{tag}"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "cvmfs_repo: 'local.test'\n"  # no version: DUCC never checked it
        "input:\n"
        f"  - '{registry.url}/{name}/app:2.0'\n"
        f"  - '{registry.url}/{name}/App:1'\n"
        f"  - '{registry.url}/{name}/app:1.+'\n"
        f"  - '{registry.url}/{name}/app:1.*'\n"  # DUCC's regular expression: 1.0 and 1.1
    )
    args = _args(tmp_path)
    strict = ducc("convert", "--strict", recipe, *args)
    assert strict.code == 2
    assert "2 problems in the recipe" in strict.stderr
    assert not (tmp_path / "repo").exists()

    run = ducc("convert", recipe, *args, env={"DUCC_TMP_DIR": str(tmp_path / "tmp")})
    assert run.code == 1, run.stderr
    assert (tmp_path / "tmp" / "cvmfs" / "ducc" / "downloads" / ".lock").is_file()
    assert "3 added" in run.stdout
    assert "2 failed" in run.stdout
    assert f"{recipe}:4: input[1]:" in run.stdout
    assert "must be lowercase" in run.stdout
    assert f"{recipe}:5: input[2]:" in run.stdout
    assert "DUCC fetched it as a literal tag too" in run.stdout
    assert "'1?*' matches the same tags" in run.stderr
    root = tmp_path / "repo" / registry.host / name
    assert sorted(p.name for p in root.iterdir()) == ["app:1.0", "app:1.1", "app:2.0"]

    ignore = tmp_path / "ignore.yaml"
    ignore.write_text(f"ignoreErrors:\n  - '{registry.url}/{name}/*'\n")
    quiet = ducc("convert", recipe, *args, env={"DUCC_IGNORE_ERRORS_FILE": str(ignore)})
    assert quiet.code == 0, quiet.stdout + quiet.stderr
    assert "failed (ignored)" in quiet.stdout


def test_a_pull_through_proxy_serves_every_request_for_its_registry(
    registry: LocalRegistry, proxy: FaultProxy, tmp_path: Path
) -> None:
    name = unique("proxied")
    registry.pusher().image(f"{name}/app", "1", app_image("proxied"))
    env = {
        "DUCC_AUTH_REGISTRIES": "mirror",
        "DUCC_mirror_IDENT": "registry.example.org",
        "DUCC_mirror_PROXY": proxy.host,
        "DUCC_mirror_USER": "robot",
        "DUCC_mirror_PASS": SECRET,
    }
    ref = f"http://registry.example.org/{name}/app:1"  # never resolved: the proxy answers
    run = ducc("-vv", "convert-single-image", ref, "local.test", *_args(tmp_path), env=env)
    assert run.code == 0, run.stderr
    link = tmp_path / "repo" / "registry.example.org" / name / "app:1"
    assert (link / "etc/app").read_text() == "proxied"
    assert proxy.count(kind="blob", method="GET") >= 2
    assert "registry_request" in run.stderr  # every request logged at -vv, to the proxy
    assert SECRET not in run.stdout + run.stderr


def test_convert_single_image_takes_ducc_s_flags_and_global_temporary_dir(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("single")
    registry.pusher().image(f"{name}/app", "1", app_image("single"))
    ref = f"{registry.url}/{name}/app:1"
    scratch, notes = tmp_path / "scratch", tmp_path / "notes.json"
    flags = ["-d", "-i", "-u", "cvmfsunpacker", "--thin-image-name", "x", "-r", "2"]
    run = ducc(
        "convert-single-image", ref, "local.test", *_args(tmp_path), *flags,
        "-t", scratch, "-n", notes,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    assert "1 added" in run.stdout
    assert "-d/--skip-layers is deprecated in DUCC" in run.stderr
    assert "thin images are gone" in run.stderr
    assert "notifications are gone" in run.stderr
    assert (scratch / "cvmfs" / "ducc" / "downloads" / ".lock").is_file()
    assert not notes.exists()


def test_prune_images_takes_the_repository_first_and_ducc_s_prune_config(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("pruneimages")
    pusher = registry.pusher()
    refs = [f"{registry.url}/{name}/app:{tag}" for tag in ("1", "2")]
    for tag in ("1", "2"):
        pusher.image(f"{name}/app", tag, app_image(f"prune-images-{tag}"))
    both = tmp_path / "both.yaml"
    both.write_text("version: 1\ncvmfs_repo: local.test\ninput:\n" + "".join(
        f"  - '{r}'\n" for r in refs
    ))  # fmt: skip
    args = _args(tmp_path)
    assert ducc("convert", both, *args).code == 0
    one = tmp_path / "one.yaml"
    one.write_text(f"input:\n  - '{refs[0]}'\n")  # DUCC's prune read input: alone
    (tmp_path / "ducc-prune.yaml").write_text(f"wishlists:\n  - {one}\n")
    run = ducc("prune-images", "local.test", *args, cwd=tmp_path)
    assert run.code == 0, run.stderr
    second = f"{registry.host}/{name}/app:2"
    assert f"local.test: unpublished 1 images\n  {second}" in run.stdout
    assert not os.path.lexists(tmp_path / "repo" / second)
    assert (tmp_path / "repo" / refs[0].split("://")[1]).is_symlink()


def test_loop_reads_recipe_file_as_ducc_s_unit_file_passes_it(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("recipefile")
    registry.pusher().image(f"{name}/app", "1", app_image("recipefile"))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"version: 1\ncvmfs_repo: local.test\ninput:\n  - '{registry.url}/{name}/app:1'\n"
        f"  - '{registry.url}/{name}/Broken:1'\n"
    )
    log = tmp_path / "loop.log"
    argv = [sys.executable, "-m", "ducc", "--log-format", "json", "loop", *_args(tmp_path)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env={**os.environ, "RECIPE_FILE": str(recipe)},
        )
    try:
        app = tmp_path / "repo" / registry.host / name / "app:1" / "etc/app"
        deadline = time.monotonic() + 60
        while not app.is_file() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert app.read_text() == "recipefile", log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert "wish_refused" in log.read_text()
    assert f"{recipe}:5: input[1]" in log.read_text()
