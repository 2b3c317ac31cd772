"""Registries that stall, trickle or never answer cost one deadline, not hours, and the images
of other registries are published meanwhile.

Loopback servers stall on purpose (`tests/support/stall_server.py`, trickling replies of
`tests/support/static_registry.py`); deadlines are set small through the environment, so
each case costs seconds. `ducc` runs as a subprocess with a timeout far above its deadlines:
a ducc that ignored them (as before) would hit that timeout and fail the test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.ducc import Run, app_image, ducc, unique, write_recipe
from tests.support.images import directory, file, make_image, make_layer
from tests.support.registry import LocalRegistry
from tests.support.stall_server import Stall, StallServer
from tests.support.static_registry import StaticRegistry

pytestmark = pytest.mark.integration

DEADLINE = 2.0
SMALL = {
    "DUCC_REGISTRY_DEADLINE": str(DEADLINE),
    "DUCC_REGISTRY_MIN_RATE": "100",
    "DUCC_REGISTRY_RATE_WINDOW": "1",
    "DUCC_REGISTRY_BACKOFF": "0.05",
    "DUCC_REGISTRY_BACKOFF_CAP": "0.2",
}
# Far above every deadline here, far below what a stalled registry cost before.
PATIENCE = 60


def convert(tmp_path: Path, images: list[str], *extra: str, env: dict[str, str]) -> Run:
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", images)
    args: list[str | Path] = ["--publisher", "dir", "--root", tmp_path / "repo"]
    args += ["--state-dir", tmp_path / "s"]
    return ducc(
        "--log-format", "json", "-v", "convert", recipe, "--json", *args, *extra,
        env=env, timeout=PATIENCE,
    )  # fmt: skip


def failure(run: Run, image: str) -> str:
    found = next(r for r in run.json()["images"] if r["image"] == image)
    assert found["outcome"] == "failed", found
    return str(found["error"])


@pytest.mark.parametrize(
    ("stall", "deadline", "says"),
    [
        # Two bytes a second pass any read timeout; each attempt fails at the rate window.
        (Stall.TRICKLE, "20", "too slow"),
        (Stall.TRICKLE, str(DEADLINE), "deadline"),  # the attempts' sum is bounded too
        (Stall.SLOW_HEADERS, str(DEADLINE), "deadline"),  # a header line every 0.5 s
        (Stall.SILENT, str(DEADLINE), "deadline"),  # accepts the request, never answers
    ],
)
def test_a_stalling_registry_fails_its_image_within_the_deadline(
    tmp_path: Path, stall: Stall, deadline: str, says: str
) -> None:
    with StallServer(stall, pace=0.5) as server:
        image, host = f"{server.url}/stall/app:1", server.host
        env = {**SMALL, "DUCC_REGISTRY_DEADLINE": deadline, "DUCC_REGISTRY_RETRIES": "3"}
        run = convert(tmp_path, [image], env=env)
    assert run.code == 1, run.stderr
    assert says in failure(run, image)
    assert not (tmp_path / "repo" / host).exists()  # nothing of it published


def test_a_registry_that_used_up_a_deadline_is_not_asked_again_at_once(tmp_path: Path) -> None:
    with StallServer(Stall.SILENT, stall_probe=True) as server:
        images = [f"{server.url}/stall/app{n}:1" for n in range(8)]
        env = {**SMALL, "DUCC_REGISTRY_READ_TIMEOUT": "60"}
        run = convert(tmp_path, images, "--image-deadline", "30s", env=env)
        asked = sum(server.requests.values())
    assert run.code == 1
    errors = [failure(run, image) for image in images]
    assert any("deadline" in e for e in errors)
    assert sum("not asked" in e for e in errors) >= 3  # the rest failed at once
    assert asked <= 5  # the requests in flight when the deadline ran out, no more


def test_the_images_of_other_registries_are_published_while_one_stalls(
    registry: LocalRegistry, tmp_path: Path
) -> None:
    name = unique("lanes")
    good = []
    for n in range(2):
        registry.pusher().image(f"{name}/app{n}", "1", app_image(f"good{n}"))
        good.append(f"{registry.url}/{name}/app{n}:1")
    env = {**SMALL, "DUCC_REGISTRY_DEADLINE": "4"}
    with StallServer(Stall.SLOW_HEADERS, pace=0.5) as server:
        slow = f"{server.url}/stall/app:1"
        run = convert(tmp_path, [slow, *good], env=env)  # the stalled one first
    assert run.outcomes() == {slow: "failed", good[0]: "added", good[1]: "added"}
    events = [json.loads(line) for line in run.stderr.splitlines() if line.startswith("{")]
    order = [
        e["image"]
        for e in events
        if e.get("event") in ("image_converted", "image_failed", "poll_failed")
    ]
    assert order.index(slow) > max(order.index(g) for g in good)  # nobody waited for it


def served_image(static: StaticRegistry, repository: str, data: bytes, **pace: float) -> str:
    """An image whose one layer `static` trickles as `pace` says (chunk, interval)."""
    layer = make_layer([directory("data"), file("data/blob", data)], compression="none")
    image = make_image([layer], cmd=["/bin/true"])
    static.manifest(repository, "1", image.manifest, image.manifest_type)
    static.blob(repository, image.config)
    static.blob(repository, layer.blob, chunk=int(pace["chunk"]), interval=pace["interval"])
    return f"{static.url}/{repository}:1"


def test_a_blob_below_the_minimum_rate_fails_after_one_resume(tmp_path: Path) -> None:
    with StaticRegistry() as static:
        image = served_image(static, "slow/blob", os.urandom(50_000), chunk=1, interval=0.2)
        run = convert(tmp_path, [image], env={**SMALL, "DUCC_REGISTRY_DEADLINE": "30"})
        blob_gets = sum(n for key, n in static.hits.items() if "/blobs/" in key)
    assert run.code == 1
    assert "too slow" in failure(run, image)
    assert blob_gets == 3  # the config, the layer and one resume of it


def test_the_image_deadline_ends_a_steady_but_endless_download(tmp_path: Path) -> None:
    with StaticRegistry() as static:
        # 2 kB/s: above the minimum rate, but 100 s for the layer
        image = served_image(static, "steady/blob", os.urandom(200_000), chunk=200, interval=0.1)
        run = convert(tmp_path, [image], "--image-deadline", "2s", env=SMALL)
    assert run.code == 1
    assert "image's deadline" in failure(run, image)
