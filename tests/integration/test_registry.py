"""The registry client, `ducc expand` and the poller against a real registry server."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from ducc.oci.digest import Digest
from ducc.oci.model import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from ducc.oci.platform import Platform, parse_platform
from ducc.oci.reference import Reference, parse_reference
from ducc.pipeline.poller import PollStatus, poll
from ducc.registry.blobs import download_blob
from ducc.registry.client import Registries
from ducc.registry.manifests import resolve
from ducc.registry.session import new_session
from ducc.registry.settings import RegistrySettings
from ducc.registry.tags import list_tags
from tests.support.images import Image, file, make_image, make_index, make_layer
from tests.support.registry import LocalRegistry
from tests.unit.test_cli import run

pytestmark = pytest.mark.integration

TAGS = ("1.0", "1.1", "1.2", "2.0", "latest")


@dataclass
class Pushed:
    host: str
    tags: dict[str, Image]
    docker: Image
    oci: Image
    platforms: dict[str, Image]

    def ref(self, text: str) -> Reference:
        return parse_reference(f"http://{self.host}/{text}")


@pytest.fixture(scope="module")
def pushed(registry: LocalRegistry) -> Pushed:
    pusher = registry.pusher()
    tags = {t: make_image([make_layer([file("version", t)])]) for t in TAGS}
    for tag, image in tags.items():
        pusher.image("it/app", tag, image)
    docker = make_image([make_layer([file("d", "docker")], fmt="docker")], fmt="docker")
    pusher.image("it/docker", "v1", docker)
    oci = make_image([make_layer([file("o", "oci")], compression="zstd")])
    pusher.image("it/oci", "v1", oci)
    layer = make_layer([file("m", "multi")])
    platforms = {
        "amd64": make_image([layer]),
        "arm64": make_image([layer], architecture="arm64", variant="v8"),
        "arm:v7": make_image([layer], architecture="arm", variant="v7"),
    }
    pusher.index("it/multi", "v1", make_index(list(platforms.values())))
    return Pushed(registry.host, tags, docker, oci, platforms)


class Recorder:
    """A session factory that counts requests by method and endpoint kind."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def __call__(self, settings: RegistrySettings) -> requests.Session:
        session = new_session(settings)
        session.hooks["response"].append(self.record)
        return session

    def record(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        path = urlsplit(response.url).path
        kind = next((k for k in ("manifests", "blobs", "tags") if f"/{k}/" in path), "base")
        self.counts[(response.request.method or "", kind)] += 1


def test_expand_command_lists_matching_tags(
    pushed: Pushed, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"version: 1\ncvmfs_repo: unpacked.test\ninput:\n"
        f"  - http://{pushed.host}/it/app:1.*\n  - http://{pushed.host}/it/docker:v1\n"
    )
    code, out, err = run(["expand", str(recipe)], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        f"http://{pushed.host}/it/app:1.0",
        f"http://{pushed.host}/it/app:1.1",
        f"http://{pushed.host}/it/app:1.2",
        f"http://{pushed.host}/it/docker:v1",
    ]


def test_expand_command_fails_for_unknown_repository_and_missing_tag(
    pushed: Pushed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        [
            "expand",
            "--image",
            f"http://{pushed.host}/it/none:*",
            "-i",
            f"http://{pushed.host}/it/app:9",
        ],
        capsys,
    )
    assert code == 1
    assert "NAME_UNKNOWN" in err
    assert f"{pushed.host}: HEAD /v2/it/app/manifests/9: HTTP 404" in err


def test_tag_list_from_a_registry_that_ignores_n(pushed: Pushed) -> None:
    # distribution 2.8 neither pages nor sorts; Link paging is proven in the unit tests.
    recorder = Recorder()
    with Registries(RegistrySettings(tags_page_size=2), session_factory=recorder) as registries:
        client = registries.client(pushed.ref("it/app:x"))
        assert sorted(list_tags(client, "it/app")) == sorted(TAGS)
    assert recorder.counts[("GET", "tags")] == 1


@pytest.mark.parametrize(
    ("name", "media_type"), [("docker", DOCKER_MANIFEST), ("oci", OCI_MANIFEST)]
)
def test_single_images_resolve_with_their_configs(
    pushed: Pushed, name: str, media_type: str
) -> None:
    image: Image = getattr(pushed, name)
    with Registries() as registries:
        ref = pushed.ref(f"it/{name}:v1")
        (resolved,) = resolve(registries.client(ref), ref)
    assert resolved.manifest.media_type == media_type
    assert str(resolved.manifest.digest) == image.digest
    assert str(resolved.config.digest) == image.config_digest
    assert resolved.platform == Platform("linux", "amd64")


def test_index_resolves_per_platform(pushed: Pushed) -> None:
    ref = pushed.ref("it/multi:v1")
    with Registries() as registries:
        client = registries.client(ref)
        (arm,) = resolve(client, ref, platform=parse_platform("linux/aarch64"))
        every = resolve(client, ref, multi_arch=True)
    assert str(arm.manifest.digest) == pushed.platforms["arm64"].digest
    assert arm.index is not None
    assert arm.index.media_type == OCI_INDEX
    assert {i.platform.label: str(i.manifest.digest) for i in every} == {
        label: image.digest for label, image in pushed.platforms.items()
    }


def test_layer_download_is_verified(pushed: Pushed, tmp_path: Path) -> None:
    ref = pushed.ref("it/oci:v1")
    with Registries() as registries:
        client = registries.client(ref)
        (resolved,) = resolve(client, ref)
        (layer,) = resolved.manifest.layers
        download_blob(client, ref.repository, layer, tmp_path / layer.digest.hex)
    assert (tmp_path / layer.digest.hex).read_bytes() == pushed.oci.layers[0].blob


def test_download_manifest_command(pushed: Pushed, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        ["download-manifest", "--platform", "linux/arm/v7", f"http://{pushed.host}/it/multi:v1"],
        capsys,
    )
    assert code == 0, err
    assert f'"digest": "{pushed.platforms["arm:v7"].digest}"' in out


def test_poller_sees_new_unchanged_changed_and_vanished(registry: LocalRegistry) -> None:
    pusher = registry.pusher()
    first = make_image([make_layer([file("v", "1")])])
    second = make_image([make_layer([file("v", "2")])])
    pusher.image("it/poll", "a", first)
    pusher.image("it/poll", "b", first)
    refs = [parse_reference(f"http://{registry.host}/it/poll:{t}") for t in ("a", "b")]
    published: dict[str, Digest] = {}
    recorder = Recorder()

    def check() -> list[PollStatus]:
        with Registries(session_factory=recorder) as registries:
            results = poll(registries, refs, lambda r: published.get(r.tag or ""), concurrency=2)
        for result in results:
            if result.new is not None:
                published[result.reference.tag or ""] = result.new
        return [r.status for r in results]

    assert check() == [PollStatus.NEW, PollStatus.NEW]
    assert check() == [PollStatus.UNCHANGED, PollStatus.UNCHANGED]
    pusher.image("it/poll", "b", second)
    assert check() == [PollStatus.UNCHANGED, PollStatus.CHANGED]
    pusher.delete_tag_target("it/poll", first.digest)
    assert check() == [PollStatus.VANISHED, PollStatus.UNCHANGED]
    assert recorder.counts[("HEAD", "manifests")] == 8
    assert recorder.counts[("GET", "manifests")] == 0
