"""Many small images sharing base layers, pushed fast: a Debian-style base, one shared middle
layer and a unique top layer each, spread over several repositories and tags."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from tests.support.ducc import base_layer
from tests.support.images import Image, Layer, Pusher, directory, file, make_image, make_layer

_MIDDLE: Layer | None = None


def middle_layer() -> Layer:
    """A shared layer above the base (a runtime every image carries)."""
    global _MIDDLE  # noqa: PLW0603 - built once per test session
    if _MIDDLE is None:
        files = [file(f"opt/runtime/lib{i:02d}.so", f"runtime {i}\n" * 200) for i in range(20)]
        _MIDDLE = make_layer([directory("opt"), directory("opt/runtime"), *files])
    return _MIDDLE


def fleet_image(text: str) -> Image:
    """base + middle + a small unique top layer whose `/etc/app` holds `text`."""
    top = make_layer([directory("etc"), file("etc/app", text), file("etc/app.d/id", text * 8)])
    return make_image([base_layer(), middle_layer(), top], cmd=["/bin/cat", "/etc/app"])


@dataclass(frozen=True, slots=True)
class Pushed:
    repository: str
    tag: str
    text: str


def plan(prefix: str, repositories: int, tags: int) -> list[Pushed]:
    """`repositories` x `tags` images named `<prefix>/r<i>:t<j>` with unique contents."""
    return [
        Pushed(f"{prefix}/r{r:02d}", f"t{t:03d}", f"{prefix} r{r} t{t}")
        for r in range(repositories)
        for t in range(tags)
    ]


def push_all(registry_url: str, images: Sequence[Pushed], threads: int = 8) -> None:
    """Push every image; shared blobs are uploaded once per repository first."""
    seed = Pusher(registry_url)
    for repository in sorted({x.repository for x in images}):
        seed.blob(repository, base_layer().blob)
        seed.blob(repository, middle_layer().blob)

    def push(chunk: Sequence[Pushed]) -> None:
        pusher = Pusher(registry_url)  # a requests.Session per thread
        for item in chunk:
            pusher.image(item.repository, item.tag, fleet_image(item.text))

    chunks = [images[i::threads] for i in range(threads)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(push, chunks))
