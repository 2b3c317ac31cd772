"""`ducc loop` as systemd runs it: new tags and updates published within the interval,
SIGHUP with a changed (or broken) recipe, webhooks, metrics, sd_notify, clean SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.support.ducc import app_image, ducc, unique, write_recipe
from tests.support.loop import Loops
from tests.support.registry import LocalRegistry, free_port

pytestmark = pytest.mark.integration


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> float:
    """Seconds until `check()` held (fails the test after `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    pytest.fail(f"not reached within {timeout} s")


def published(root: Path, ref: str, text: str) -> Callable[[], bool]:
    app = root / ref.split("://", 1)[1] / "etc/app"
    return lambda: app.is_file() and app.read_text() == text


def test_loop_publishes_new_tags_and_updates_reloads_and_stops_cleanly(
    registry: LocalRegistry, loops: Loops, tmp_path: Path
) -> None:
    name = unique("loop")
    pusher = registry.pusher()
    pusher.image(f"{name}/app", "v1", app_image("v1"))
    pusher.image(f"{name}/app", "stable", app_image("stable-1"))
    base = f"{registry.url}/{name}/app"
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [f"{base}:v*", f"{base}:stable"])
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    loop = loops.start(
        recipe, "--interval", "2s", env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    )
    messages = [notify.recv(4096) for _ in range(2)]
    assert b"READY=1" in messages
    assert any(m.startswith(b"STATUS=2 images, 0 failing") for m in messages)
    wait_for(published(loop.root, f"{base}:v1", "v1"))
    wait_for(published(loop.root, f"{base}:stable", "stable-1"))

    pusher.image(f"{name}/app", "v2", app_image("v2"))  # a new tag matching the wildcard
    pusher.image(f"{name}/app", "stable", app_image("stable-2"))  # an update of a tag
    took = max(
        wait_for(published(loop.root, f"{base}:v2", "v2")),
        wait_for(published(loop.root, f"{base}:stable", "stable-2")),
    )
    assert took < 2 * 2 + 5  # within the interval (and a cycle's work)

    recipe.write_text(recipe.read_text().replace("version: 1", "version: 1\ninput: [oops"))
    loop.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "recipe_reload_failed" in loop.log.read_text())
    assert loop.proc.poll() is None  # a broken recipe keeps the last good one

    pusher.image(f"{name}/other", "1", app_image("other"))
    write_recipe(recipe, "local.test", [f"{base}:v*", f"{registry.url}/{name}/other:1"])
    loop.proc.send_signal(signal.SIGHUP)
    wait_for(published(loop.root, f"{registry.url}/{name}/other:1", "other"))

    code, log = loop.stop()
    assert code == 0, log
    assert "stopped cleanly" in log
    assert ducc("verify", loop.root).code == 0
    status = json.loads(ducc("status", "--state-dir", tmp_path / "s", "--json").stdout)
    images = {i["image"] for i in status["images"]}
    assert f"{base}:stable" not in images  # no longer wished: forgotten
    assert {f"{base}:v1", f"{base}:v2", f"{registry.url}/{name}/other:1"} <= images


def test_failing_image_backs_off_and_does_not_stop_the_others(
    registry: LocalRegistry, loops: Loops, tmp_path: Path
) -> None:
    name = unique("backoff")
    registry.pusher().image(f"{name}/app", "1", app_image("ok"))
    good, bad = f"{registry.url}/{name}/app:1", f"{registry.url}/{name}/missing:1"
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [bad, good])
    loop = loops.start(recipe, "--interval", "1s", "--jitter", "0")
    wait_for(published(loop.root, good, "ok"))
    time.sleep(4)
    code, log = loop.stop()
    assert code == 0
    checks = [json.loads(line) for line in log.splitlines() if '"images_checked"' in line]
    assert (checks[0]["added"], checks[0]["failed"]) == (1, 1)  # each check logged, with counts
    assert sum(c.get("unchanged", 0) for c in checks) >= 2
    status = json.loads(ducc("status", "--state-dir", tmp_path / "s", "--json").stdout)
    by_image = {i["image"]: i for i in status["images"]}
    assert by_image[good]["failures"] == 0
    assert by_image[good]["status"] in {"added", "unchanged"}
    # Checked at 0 s, 1 s, 3 s (and 7 s): backed off, not every second as the good one was.
    assert 2 <= by_image[bad]["failures"] <= 3
    assert "not found" in by_image[bad]["last_error"]


def test_webhook_schedules_a_push_at_once_and_metrics_are_served(
    registry: LocalRegistry, loops: Loops, tmp_path: Path
) -> None:
    name = unique("hook")
    pusher = registry.pusher()
    pusher.image(f"{name}/app", "v1", app_image("v1"))
    base = f"{registry.url}/{name}/app"
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [f"{base}:v*"])
    (tmp_path / "secret").write_text("s3cret\n")
    hook, metrics = free_port(), free_port()
    loop = loops.start(
        recipe,
        "--interval", "1h",
        "--webhook-listen", f"127.0.0.1:{hook}",
        "--webhook-secret-file", str(tmp_path / "secret"),
        "--metrics-listen", f"127.0.0.1:{metrics}",
    )  # fmt: skip
    wait_for(published(loop.root, f"{base}:v1", "v1"))
    pusher.image(f"{name}/app", "v2", app_image("v2"))
    event = {"events": [{"action": "push", "target": {"repository": f"{name}/app", "tag": "v2"}}]}
    url = f"http://127.0.0.1:{hook}/"
    refused = requests.post(url, json=event, headers={"Authorization": "Bearer no"}, timeout=10)
    assert refused.status_code == 401
    answer = requests.post(url, json=event, headers={"Authorization": "Bearer s3cret"}, timeout=10)
    assert answer.status_code == 202
    assert answer.json() == {"scheduled": [f"{base}:v2"]}
    wait_for(published(loop.root, f"{base}:v2", "v2"), timeout=15)  # the interval is 1 h
    text = requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).text
    assert 'ducc_images{state="added"} 2' in text
    assert f'ducc_registry_requests_total{{registry="{registry.host}",code="200"}}' in text
    assert 'ducc_conversions_total{result="added"} 2' in text
    code, _ = loop.stop()
    assert code == 0
