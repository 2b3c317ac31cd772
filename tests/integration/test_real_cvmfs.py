"""ducc on a real CernVM-FS stratum 0 (skipped where none is installed): a Debian-based image
converted, updated and converted again, each publish's cost measured in the transaction's
upper dir; the flat tree equal to `umoci unpack` and running python3 under chroot; the
skip options and `convert-single-image`; `loop` with a tag pushed while it runs; SIGTERM
in the middle of a transaction and SIGKILL, each followed by a run that completes.

The conversions of `test_convert.py`, `test_operations.py` (gc, prune, delete-image,
verify), the podman test and the hostile layers run on the real server too; this module
holds what only makes sense there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import meter
from tests.support.debian import debian_layers, update_layer
from tests.support.ducc import Run, app_image, ducc, unique, write_recipe
from tests.support.images import Image, Layer, make_image, make_index, write_oci_layout
from tests.support.real_cvmfs import RealCvmfs
from tests.support.registry import LocalRegistry
from tests.support.targets import Target, make_target
from tests.support.trees import flat_differences, umoci_rootfs

pytestmark = [pytest.mark.integration, pytest.mark.real_cvmfs, pytest.mark.root]
MB = 1 << 20


@pytest.fixture
def real(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return make_target("real", request, tmp_path)


@pytest.fixture(scope="module")
def debian() -> tuple[Layer, Layer]:
    return debian_layers("test")


def public(target: Target, ref: str) -> Path:
    return target.root / ref.split("://", 1)[1]


def publishes_since(target: Target, since: int) -> list[meter.Call]:
    return list(meter.calls(target.meter_log or Path("/nonexistent"))[since:])


def processed(calls: list[meter.Call]) -> int:
    """Bytes the publishes found in their transactions' upper dirs."""
    return sum(c.upper_bytes for c in calls if c.verb == "publish")


def same_as_umoci(image: Image, flat: Path, work: Path) -> list[str]:
    layout = work / f"layout-{image.config_digest[7:15]}"
    write_oci_layout(layout, {"t": image})
    return flat_differences(flat, umoci_rootfs(f"{layout}:t", work / f"bundle-{layout.name}"))


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")
def test_debian_image_converted_updated_and_unchanged(
    registry: LocalRegistry, real: Target, debian: tuple[Layer, Layer], tmp_path: Path
) -> None:
    """First conversion, a tag update that adds one layer, a run with nothing to do: each
    publish charged what its upper dir held (counted before the publish, as cvmfs sees it)."""
    base, app = debian
    name = unique("debian")
    ref = f"{registry.url}/{name}/python:3"
    recipe = write_recipe(tmp_path / "r.yaml", real.repo, [ref])
    first = make_image([base, app], cmd=["/usr/bin/python3"])
    registry.pusher().image(f"{name}/python", "3", first)

    run = real.convert(recipe)
    assert run.code == 0, run.stderr
    calls = meter.calls(real.meter_log or Path())
    # the bottom chain is a catalog-level copy of the base layer's tree: the publishes
    # process the app layer, not the image (1.1x its bytes at most)
    assert processed(calls) <= 1.1 * (len(base.tar) + len(app.tar))
    assert processed(calls) < len(base.tar) // 2
    assert sum(c.verb == "ingest" for c in calls) == 2
    flat = public(real, ref).resolve()
    assert same_as_umoci(first, flat, tmp_path) == []
    python = ["chroot", str(flat), "/usr/bin/python3", "-c", "import json; print(json.dumps(1))"]
    assert subprocess.run(python, capture_output=True, text=True, check=True).stdout == "1\n"

    top = update_layer(1)
    second = make_image([base, app, top], cmd=["/usr/bin/python3"])
    registry.pusher().image(f"{name}/python", "3", second)
    since = len(calls)
    run = real.convert(recipe)
    assert run.code == 0, run.stderr
    (result,) = run.json()["images"]
    assert (result["outcome"], result["layers_ingested"], result["chains_built"]) == (
        "updated",
        1,
        1,
    )
    update = publishes_since(real, since)
    assert processed(update) <= 2 * len(top.tar) + MB  # the change, not the image again
    flat = public(real, ref).resolve()
    assert same_as_umoci(second, flat, tmp_path) == []
    assert (flat / "opt/update.bin").stat().st_size == MB

    since += len(update)
    again = real.convert(recipe)
    assert again.json()["totals"]["unchanged"] == 1
    assert [c.verb for c in publishes_since(real, since)] == ["list"]  # nothing published
    verified = ducc("verify", real.root)
    assert verified.code == 0, verified.stdout
    assert not real.in_transaction()


def test_skip_options_and_convert_single_image(
    registry: LocalRegistry, real: Target, tmp_path: Path
) -> None:
    name = unique("skips")
    pusher = registry.pusher()
    for tag in ("layers", "nopodman", "single"):
        pusher.image(f"{name}/app", tag, app_image(tag))
    layers_only = f"{registry.url}/{name}/app:layers"
    no_podman = f"{registry.url}/{name}/app:nopodman"
    skip_flat = real.convert(write_recipe(tmp_path / "a.yaml", real.repo, [layers_only]), "-s")
    assert skip_flat.code == 0, skip_flat.stderr
    assert not os.path.lexists(public(real, layers_only))
    assert not (real.root / ".flat").exists()
    assert len(list(real.root.glob(".layers/*/*/layerfs"))) == 2
    skip_podman = real.convert(write_recipe(tmp_path / "b.yaml", real.repo, [no_podman]), "-p")
    assert skip_podman.code == 0, skip_podman.stderr
    assert (public(real, no_podman) / "etc/app").read_text() == "nopodman"
    assert not (real.root / "podmanStore").exists()

    single = f"{registry.url}/{name}/app:single"
    run = ducc("convert-single-image", single, real.repo, *real.args, env=real.env)
    assert run.code == 0, run.stderr
    assert (public(real, single) / "etc/app").read_text() == "single"
    assert ducc("verify", real.root).code == 0
    assert not real.in_transaction()


def test_multi_arch_variant_link_resolves_on_the_client(
    registry: LocalRegistry, real: Target, tmp_path: Path
) -> None:
    name = unique("multi")
    amd, arm = app_image("amd"), app_image("arm", architecture="arm64")
    registry.pusher().index(f"{name}/app", "1", make_index([amd, arm]))
    ref = f"{registry.url}/{name}/app:1"
    run = real.convert(write_recipe(tmp_path / "r.yaml", real.repo, [ref]), "--multi-arch")
    assert run.code == 0, run.stderr
    # a variant symlink: clients expand $(CVMFS_ARCH:-amd64); the stratum 0's own mount
    # (cache server mode) shows it raw, so it is followed here by hand
    link = public(real, ref)
    target = os.readlink(link)
    assert "$(CVMFS_ARCH:-amd64)" in target
    expanded = link.parent / target.replace("$(CVMFS_ARCH:-amd64)", "amd64")
    assert (expanded / "etc/app").read_text() == "amd"
    arm_link = real.root / ".multiarch/arm64" / ref.split("://", 1)[1]
    assert (arm_link / "etc/app").read_text() == "arm"
    assert ducc("verify", real.root).code == 0


def test_loop_publishes_a_tag_pushed_while_it_runs(
    registry: LocalRegistry, real: Target, tmp_path: Path
) -> None:
    name = unique("loop")
    pusher = registry.pusher()
    pusher.image(f"{name}/app", "v1", app_image("v1"))
    recipe = write_recipe(tmp_path / "r.yaml", real.repo, [f"{registry.url}/{name}/app:v*"])
    log = tmp_path / "loop.log"
    argv = [sys.executable, "-m", "ducc", "-v", "--log-format", "json", "loop", str(recipe)]
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*argv, *real.args, "--interval", "2s"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **real.env},
        )
    try:
        wait_for(lambda: app_text(real, f"{registry.url}/{name}/app:v1") == "v1", 120)
        pusher.image(f"{name}/app", "v2", app_image("v2"))
        wait_for(lambda: app_text(real, f"{registry.url}/{name}/app:v2") == "v2", 120)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert not real.in_transaction()
    assert ducc("verify", real.root).code == 0


def app_text(target: Target, ref: str) -> str | None:
    path = public(target, ref) / "etc/app"
    return path.read_text() if path.is_file() else None


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not reached within {timeout} s"
        time.sleep(0.2)


def start_convert(real: Target, recipe: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ducc", "convert", str(recipe), *real.args, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **real.env},
        text=True,
    )


def wait_inside_transaction(real: Target, proc: subprocess.Popen[str], opened: int) -> None:
    """Until ducc has opened more than `opened` transactions that it has not yet closed:
    the meter logs `transaction` when the call returns, `publish` when it has run."""
    deadline = time.monotonic() + 120
    while True:
        verbs = [c.verb for c in meter.calls(real.meter_log or Path())]
        if verbs.count("transaction") > opened and verbs.count("transaction") > (
            verbs.count("publish") + verbs.count("abort")
        ):
            return
        assert proc.poll() is None, "ducc ended before it opened a transaction"
        assert time.monotonic() < deadline, "ducc never opened a transaction"
        time.sleep(0.01)


def transactions_opened(real: Target) -> int:
    return [c.verb for c in meter.calls(real.meter_log or Path())].count("transaction")


def test_sigterm_inside_a_transaction_aborts_it_and_the_next_run_completes(
    registry: LocalRegistry, real: Target, debian: tuple[Layer, Layer], tmp_path: Path
) -> None:
    name = unique("sigterm")
    base, app = debian
    registry.pusher().image(f"{name}/python", "3", make_image([base, app]))
    recipe = write_recipe(tmp_path / "r.yaml", real.repo, [f"{registry.url}/{name}/python:3"])
    proc = start_convert(real, recipe)
    wait_inside_transaction(real, proc, 0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err
    assert not real.in_transaction(), err
    after = real.convert(recipe)
    assert after.code == 0, after.stderr
    assert ducc("verify", real.root).code == 0


def test_kill_9_inside_a_transaction_then_the_next_run_completes(
    registry: LocalRegistry, real: Target, debian: tuple[Layer, Layer], tmp_path: Path
) -> None:
    """SIGKILL to ducc alone (its `cvmfs_server` child, if any, finishes on its own): the
    next run finds the transaction of a dead ducc, aborts it, and converts the image."""
    name = unique("kill9")
    base, app = debian
    image = make_image([base, app])
    registry.pusher().image(f"{name}/python", "3", image)
    ref = f"{registry.url}/{name}/python:3"
    recipe = write_recipe(tmp_path / "r.yaml", real.repo, [ref])
    proc = start_convert(real, recipe)
    wait_inside_transaction(real, proc, 1)  # past the first product's transaction
    proc.kill()
    proc.communicate(timeout=60)
    wait_for(lambda: not _children_of(proc.pid), 120)
    assert not os.path.lexists(public(real, ref))  # nothing half-published is visible
    after = real.convert(recipe)
    assert after.code == 0, after.stderr
    assert not real.in_transaction()
    assert (public(real, ref) / "etc/app").read_text() == "app\n"
    assert ducc("verify", real.root).code == 0


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def test_the_repository_is_in_no_transaction_after_the_module(real_cvmfs: RealCvmfs) -> None:
    assert not real_cvmfs.in_transaction()
    run: Run = ducc("verify", real_cvmfs.root)
    assert run.code == 0, run.stdout
