"""Poll 1,000 unchanged images on a local registry: HEAD-first poller vs GET every time.

Run: .venv/bin/python bench/poll.py [--images N]
Starts its own docker-registry on 127.0.0.1, pushes N distinct images (one tag each), then
polls them with the poller (HEAD, GET only on change) and with a baseline that GETs every
manifest, at 1 and at 8 concurrent requests. Prints requests by method and wall times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.images import file, make_image, make_layer
from tests.support.registry import LocalRegistry, available

from ducc import log
from ducc.oci.digest import Digest
from ducc.oci.reference import Reference, parse_reference
from ducc.pipeline.poller import PollStatus, poll
from ducc.registry.client import Registries
from ducc.registry.manifests import get_manifest
from ducc.registry.session import new_session
from ducc.registry.settings import RegistrySettings

REPOSITORIES = 10


class Counting:
    """Session factory counting requests by (method, endpoint kind)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, settings: RegistrySettings) -> requests.Session:
        session = new_session(settings)
        session.hooks["response"].append(self.record)
        return session

    def record(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        path = urlsplit(response.url).path
        kind = next((k for k in ("manifests", "blobs", "tags") if f"/{k}/" in path), "base")
        self.counts[f"{response.request.method} {kind}"] += 1


def push(registry: LocalRegistry, count: int) -> dict[Reference, Digest]:
    """`count` distinct images spread over a few repositories; their published digests."""

    def one(i: int) -> tuple[Reference, Digest]:
        image = make_image([make_layer([file("id", str(i))])])
        repository, tag = f"bench/app{i % REPOSITORIES}", f"v{i}"
        registry.pusher().image(repository, tag, image)
        ref = parse_reference(f"http://{registry.host}/{repository}:{tag}")
        return ref, Digest.parse(image.digest)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, range(count)))


def head_poller(
    registries: Registries,
    images: Sequence[Reference],
    published: dict[Reference, Digest],
    jobs: int,
) -> int:
    results = poll(registries, images, published.get, concurrency=jobs)
    return sum(r.status is PollStatus.UNCHANGED for r in results)


def get_every_time(
    registries: Registries,
    images: Sequence[Reference],
    published: dict[Reference, Digest],
    jobs: int,
) -> int:
    def one(ref: Reference) -> bool:
        client = registries.client(ref)
        return get_manifest(client, ref.repository, ref.pull_reference).digest == published[ref]

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return sum(pool.map(one, images))


Strategy = Callable[[Registries, Sequence[Reference], dict[Reference, Digest], int], int]


def measure(
    name: str,
    strategy: Strategy,
    images: Sequence[Reference],
    published: dict[Reference, Digest],
    jobs: int,
) -> None:
    counting = Counting()
    settings = RegistrySettings(max_concurrent=jobs)
    with Registries(settings, session_factory=counting) as registries:
        started = time.perf_counter()
        unchanged = strategy(registries, images, published, jobs)
        seconds = time.perf_counter() - started
    requests_by_kind = ", ".join(f"{k}: {v}" for k, v in sorted(counting.counts.items()))
    print(
        f"{name:<16} {jobs:>2} concurrent  {seconds:7.2f} s  {len(images) / seconds:7.0f} images/s"
        f"  unchanged {unchanged}/{len(images)}  [{requests_by_kind}]"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    args = parser.parse_args()
    if not available():
        print("docker-registry is not installed (scripts/setup installs it)", file=sys.stderr)
        return 1
    log.configure(verbosity=0, fmt="console")
    with tempfile.TemporaryDirectory(prefix="ducc-bench-poll-") as workdir:
        registry = LocalRegistry(Path(workdir)).start()
        try:
            started = time.perf_counter()
            published = push(registry, args.images)
            print(f"pushed {len(published)} images in {time.perf_counter() - started:.1f} s")
            images = list(published)
            for jobs in (1, 8):
                measure("poller (HEAD)", head_poller, images, published, jobs)
                measure("GET every time", get_every_time, images, published, jobs)
        finally:
            registry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
