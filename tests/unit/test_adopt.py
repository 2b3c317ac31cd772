"""Adoption of images DUCC recorded: decided from manifests alone (never a blob), refused
when the config changed or a product is incomplete, and done in one transaction that leaves
every product and link as DUCC made it."""

from __future__ import annotations

import shutil
from pathlib import Path

import responses

from ducc.oci.reference import parse_reference
from ducc.pipeline.adopt import Adoption, adopt, plan_adoption
from ducc.publish.directory import DirectoryPublisher
from ducc.registry.client import Registries
from ducc.repository.layout import Layout
from ducc.repository.recorded import RecordForm, record_for
from tests.support.ducc_layout import DuccRepository, hexof
from tests.support.fake_registry import FakeRegistry
from tests.support.images import Image, file, make_image, make_index, make_layer
from tests.unit.conftest import MakeRegistries

HOST = "registry.test"
APP = make_image([make_layer([file("base", "1")]), make_layer([file("app", "1")])])
NEW = make_image([make_layer([file("base", "1")]), make_layer([file("app", "2")])])
AMD = make_image([make_layer([file("amd", "1")])])
ARM = make_image([make_layer([file("arm", "1")])], architecture="arm", variant="v7")


def _plan(
    repo: DuccRepository, registries: Registries, text: str, multi_arch: bool = False
) -> Adoption | None:
    ref = parse_reference(f"{HOST}/{text}")
    return plan_adoption(
        Layout(repo.root), registries.client(ref), ref, None, multi_arch=multi_arch
    )


def _no_blob_fetched(rsps: responses.RequestsMock) -> bool:
    return not [c for c in rsps.calls if "/blobs/" in (c.request.url or "")]


def test_an_unchanged_image_is_adopted_from_its_manifest_alone(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    FakeRegistry(rsps).image("team/app", "1", APP)
    repo = DuccRepository(tmp_path / "repo", HOST)
    name = repo.publish("team/app", "1", APP)
    adoption = _plan(repo, make_registries(), "team/app:1")
    assert adoption is not None
    publisher = DirectoryPublisher(repo.root)
    with publisher.session(wait=False):
        adopt(publisher, adoption)
    assert publisher.publishes <= 1
    assert _no_blob_fetched(rsps)
    record = record_for(Layout(repo.root), parse_reference(f"{HOST}/team/app:1"))
    assert record is not None
    assert record.form is RecordForm.DUCC
    assert (repo.root / ".metadata" / name / "manifest.json").read_bytes() == APP.manifest
    assert not (repo.root / ".metadata" / name / "config.json").exists()  # no local copy


def _refused(repo: DuccRepository, registries: Registries) -> bool:
    return _plan(repo, registries, "team/app:1") is None


def test_a_changed_config_is_converted_not_adopted(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    FakeRegistry(rsps).image("team/app", "1", NEW)
    repo = DuccRepository(tmp_path / "repo", HOST)
    repo.publish("team/app", "1", APP)
    assert _refused(repo, make_registries())


def test_an_incomplete_layer_or_flat_is_converted_not_adopted(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    FakeRegistry(rsps).image("team/app", "1", APP)
    repo = DuccRepository(tmp_path / "repo", HOST)
    repo.publish("team/app", "1", APP)
    blob = hexof(APP.layers[1].digest)
    layer_info = repo.root / ".layers" / blob[:2] / blob / ".metadata" / "layers.json"
    saved = layer_info.read_bytes()
    layer_info.unlink()
    assert _refused(repo, make_registries())
    layer_info.write_bytes(saved)
    config = hexof(APP.config_digest)
    shutil.rmtree(repo.root / ".flat" / config[:2] / config / ".singularity.d")
    assert _refused(repo, make_registries())


def test_a_record_in_ducc_s_form_is_not_adopted_again(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    FakeRegistry(rsps).image("team/app", "1", APP)
    repo = DuccRepository(tmp_path / "repo", HOST)
    name = repo.publish("team/app", "1", APP)
    (repo.root / ".metadata" / name / "manifest.json").write_bytes(APP.manifest)
    assert _refused(repo, make_registries())


def _multi(rsps: responses.RequestsMock, tmp_path: Path) -> tuple[DuccRepository, str, Image]:
    index = make_index([AMD, ARM])
    FakeRegistry(rsps).index("team/multi", "1", index)
    repo = DuccRepository(tmp_path / "repo", HOST)
    name = repo.publish_multi_arch("team/multi", "1", index, ["amd64", "arm"])
    repo.podman_flat(name, AMD)  # the podman store keeps a verified copy of AMD's config
    return repo, name, AMD


def test_a_multi_arch_image_keeps_ducc_s_labels_and_gets_its_config_from_podman(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    repo, name, amd = _multi(rsps, tmp_path)
    adoption = _plan(repo, make_registries(), "team/multi:1", multi_arch=True)
    assert adoption is not None
    assert adoption.variant
    publisher = DirectoryPublisher(repo.root)
    with publisher.session(wait=False):
        adopt(publisher, adoption)
    assert _no_blob_fetched(rsps)
    metadata = repo.root / ".metadata"
    assert (metadata / name / "config.json").read_bytes() == amd.config
    assert (metadata / name / "index.json").is_file()
    assert (metadata / ".multiarch" / "arm" / name / "manifest.json").read_bytes() == ARM.manifest
    assert not (repo.root / ".multiarch" / "arm:v7").exists()


def test_multi_arch_needs_a_record_of_every_platform(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, tmp_path: Path
) -> None:
    repo, name, _ = _multi(rsps, tmp_path)
    shutil.rmtree(repo.root / ".metadata" / ".multiarch" / "arm" / name)
    assert _plan(repo, make_registries(), "team/multi:1", multi_arch=True) is None
    # Without --multi-arch only amd64 is wanted, and DUCC recorded it.
    assert _plan(repo, make_registries(), "team/multi:1") is not None
