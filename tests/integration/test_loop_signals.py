"""`ducc loop` under signals as a service manager sends them: a storm of SIGHUPs while an
image converts does not kill it, and SIGTERM ends it within seconds in every phase, even
while a registry never answers or a retry is backing off."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.ducc import unique, write_recipe
from tests.support.images import directory, file, make_image, make_layer
from tests.support.loop import Loop, Loops
from tests.support.registry import LocalRegistry
from tests.support.stall_server import Stall, StallServer

pytestmark = pytest.mark.integration

# What systemd allows by default before it kills (TimeoutStopSec=90 s) is far above this.
STOP_WITHIN = 10.0


def start(loops: Loops, images: list[str], env: dict[str, str] | None = None) -> Loop:
    """`ducc loop` over a recipe of `images`, polling once an hour (signals decide here)."""
    recipe = write_recipe(loops.work / "r.yaml", "local.test", images)
    return loops.start(recipe, "--interval", "1h", env=env)


def test_a_storm_of_sighups_during_a_conversion_is_one_reload(
    registry: LocalRegistry, loops: Loops
) -> None:
    name = unique("hup")
    data = os.urandom(16 * 1024 * 1024)  # a conversion of a few seconds to storm through
    layer = make_layer([directory("data"), file("data/blob", data), file("etc/app", "hup")])
    registry.pusher().image(f"{name}/app", "1", make_image([layer], cmd=["/bin/true"]))
    image = f"{registry.url}/{name}/app:1"
    loop = start(loops, [image])
    loop.wait_for(lambda: bool(loop.events("blob_download")))  # the conversion is under way
    for _ in range(3):
        for _ in range(1000):
            loop.proc.send_signal(signal.SIGHUP)
        time.sleep(0.2)
    public = loop.root / image.split("://", 1)[1] / "etc" / "app"
    loop.wait_for(public.is_file)
    loop.wait_for(lambda: bool(loop.events("recipe_reloaded")))
    assert loop.proc.poll() is None  # alive after 3,000 SIGHUPs
    assert len(loop.events("recipe_reloaded")) <= 3  # coalesced: not one reload per signal
    code, _ = loop.terminate()
    assert code == 0
    assert "stopped cleanly" in loop.log.read_text()


def test_sigterm_during_a_retry_backoff_ends_the_loop_within_seconds(
    loops: Loops,
) -> None:
    env = {"DUCC_REGISTRY_READ_TIMEOUT": "0.5", "DUCC_REGISTRY_BACKOFF": "60"}
    with StallServer(Stall.SILENT, stall_probe=True) as server:
        loop = start(loops, [f"{server.url}/stall/a:1", f"{server.url}/stall/b:1"], env=env)
        loop.wait_for(lambda: bool(loop.events("registry_retry")))  # backing off a minute
        code, took = loop.terminate()
    assert code == 0
    assert took < STOP_WITHIN
    assert "stopped cleanly" in loop.log.read_text()


def test_sigterm_while_a_registry_never_answers_ends_the_loop_within_seconds(
    loops: Loops,
) -> None:
    # The defaults: a read waits 60 s for a byte; the requests are blocked in recv().
    with StallServer(Stall.SILENT) as server:
        loop = start(loops, [f"{server.url}/stall/a:1", f"{server.url}/stall/b:1"])
        loop.wait_for(lambda: sum(server.requests.values()) >= 3)  # /v2/ and both HEADs
        code, took = loop.terminate()
    assert code == 0
    assert took < STOP_WITHIN
