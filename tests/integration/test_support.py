"""The test support itself: images pushed to the real registry come back byte-identical."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.images import (
    OCI_INDEX,
    directory,
    file,
    make_image,
    make_index,
    make_layer,
    write_oci_layout,
)
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration


def test_pushed_image_and_index_are_served_back(registry: LocalRegistry) -> None:
    layer = make_layer([directory("etc"), file("etc/hello", "hi")])
    amd64 = make_image([layer])
    arm64 = make_image([layer], architecture="arm64", variant="v8")
    pusher = registry.pusher()
    pusher.image("support/single", "v1", amd64)
    pusher.index("support/multi", "v1", make_index([amd64, arm64]))
    got = requests.get(
        f"{registry.url}/v2/support/single/manifests/v1",
        headers={"Accept": amd64.manifest_type},
        timeout=10,
    )
    assert got.content == amd64.manifest
    assert got.headers["Docker-Content-Digest"] == amd64.digest
    index = requests.get(
        f"{registry.url}/v2/support/multi/manifests/v1",
        headers={"Accept": OCI_INDEX},
        timeout=10,
    ).json()
    platforms = [m["platform"]["architecture"] for m in index["manifests"]]
    assert platforms == ["amd64", "arm64"]
    blob = requests.get(f"{registry.url}/v2/support/single/blobs/{layer.digest}", timeout=10)
    assert blob.content == layer.blob


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_oci_layout_is_readable_by_skopeo(tmp_path: Path) -> None:
    image = make_image([make_layer([file("a", "1")], compression="zstd")])
    write_oci_layout(tmp_path / "layout", {"v1": image})
    out = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{tmp_path / 'layout'}:v1"],
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(out)["config"]["digest"] == image.config_digest
