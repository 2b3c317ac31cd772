"""Start a local registry on 127.0.0.1:5055 (Debian's docker-registry) and push sample images.

The images are generated from this machine's files: a Debian-style root filesystem (dash,
coreutils' echo, cat and ls with their libraries) plus a small application layer. Used by
`scripts/setup` so that `ducc convert recipes/local-demo.yaml --publisher dir` has something
to publish.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.images import (  # noqa: E402 - needs the repository on sys.path
    Pusher,
    directory,
    file,
    host_rootfs_entries,
    make_image,
    make_layer,
)
from tests.support.registry import REGISTRY_BINARY  # noqa: E402

PORT = 5055
URL = f"http://127.0.0.1:{PORT}"
WORK = ROOT / ".demo" / "registry"
CONFIG = f"""\
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: {WORK / "storage"}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{PORT}
"""


def running() -> bool:
    try:
        return requests.get(f"{URL}/v2/", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def start() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "config.yml").write_text(CONFIG)
    log = (WORK / "registry.log").open("ab")
    subprocess.Popen(  # runs on after this script: it is the demo's registry
        [REGISTRY_BINARY, "serve", str(WORK / "config.yml")],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    for _ in range(100):
        if running():
            return
        time.sleep(0.1)
    sys.exit(f"docker-registry did not start on {URL}; see {WORK / 'registry.log'}")


def push() -> None:
    base = make_layer(host_rootfs_entries(["/bin/sh", "/bin/echo", "/bin/cat", "/bin/ls"]))
    pusher = Pusher(URL)
    motd = "Hello from an image published by ducc.\n"
    app = make_layer([directory("etc"), file("etc/motd", motd)])
    hello = make_image([base, app], cmd=["/bin/cat", "/etc/motd"])
    pusher.image("demo/hello", "1", hello)
    for version in ("1.0", "1.1"):
        tool = make_layer([directory("opt"), file("opt/version", f"{version}\n")])
        pusher.image("demo/tools", f"v{version}", make_image([base, tool]))


def main() -> None:
    started = not running()
    if started:
        start()
    push()
    print(f"demo registry on {URL}: demo/hello:1, demo/tools:v1.0, demo/tools:v1.1")
    if started:
        print(f"stop it with: pkill -f '{REGISTRY_BINARY} serve {WORK / 'config.yml'}'")


if __name__ == "__main__":
    main()
