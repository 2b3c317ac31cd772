"""Pointers to a converted image: links, podman entry and record, written whole or not at
all; the podman entry's creation time comes from the config."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ducc.oci.digest import Digest
from ducc.oci.model import ImageManifest, parse_config, parse_manifest
from ducc.oci.reference import parse_reference
from ducc.registry.manifests import ResolvedImage
from ducc.repository import pointers
from ducc.repository.layout import Layout
from ducc.repository.podman import PodmanStore
from ducc.repository.pointers import Converted, image_created, write_pointers
from ducc.repository.recorded import record_for
from tests.support.images import directory, file, make_image, make_layer

REF = parse_reference("registry.test/team/app:v1")


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-01-01T10:00:00+02:00", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("2026-01-01T08:00:00Z", datetime(2026, 1, 1, 8, tzinfo=UTC)),
        ("0001-01-01T00:00:00+14:00", None),  # valid ISO 8601, before year 1 in UTC
        ("9999-12-31T23:59:59-14:00", None),  # after year 9999 in UTC
        ("yesterday", None),
        (1700000000, None),
    ],
)
def test_creation_time_is_utc_or_nothing(created: object, expected: datetime | None) -> None:
    assert image_created(json.dumps({"created": created}).encode()) == expected


def _resolved() -> ResolvedImage:
    image = make_image([make_layer([directory("etc"), file("etc/app", "app")])])
    manifest = parse_manifest(image.manifest, image.manifest_type)
    assert isinstance(manifest, ImageManifest)
    config = parse_config(image.config, Digest.parse(image.config_digest))
    return ResolvedImage(REF, config.platform, manifest, config)


def test_pointers_write_links_and_metadata(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    image = _resolved()
    flat = layout.flat_dir(image.config.digest)
    flat.mkdir(parents=True)
    write_pointers(layout, REF, [Converted(image, flat)], variant=False, podman=True)
    assert layout.public_path(REF).resolve() == flat.resolve()
    record = record_for(layout, REF)
    assert record is not None
    assert record.config == image.config.digest


def test_a_failing_podman_entry_leaves_no_link_and_no_metadata(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where nothing can roll back (the directory publisher), the public link comes after
    the step that can fail for reasons of the image."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("podman store is read-only")

    monkeypatch.setattr(PodmanStore, "add_image", refuse)
    layout = Layout(tmp_path)
    image = _resolved()
    flat = layout.flat_dir(image.config.digest)
    flat.mkdir(parents=True)
    with pytest.raises(OSError, match="read-only"):
        write_pointers(layout, REF, [Converted(image, flat)], variant=False, podman=True)
    assert not os.path.lexists(layout.public_path(REF))
    assert record_for(layout, REF) is None


# --- the final step is all or nothing, even without a transaction ---------------------------


def _resolved_as(text: str, ref_text: str = "registry.test/team/app:v1") -> ResolvedImage:
    image = make_image([make_layer([directory("etc"), file("etc/app", text)])])
    manifest = parse_manifest(image.manifest, image.manifest_type)
    assert isinstance(manifest, ImageManifest)
    config = parse_config(image.config, Digest.parse(image.config_digest))
    return ResolvedImage(parse_reference(ref_text), config.platform, manifest, config)


def _publish(layout: Layout, image: ResolvedImage) -> Path:
    flat = layout.flat_dir(image.config.digest)
    flat.mkdir(parents=True, exist_ok=True)
    converted = [Converted(image, flat)]
    write_pointers(layout, image.reference, converted, variant=False, podman=True)
    return flat


def _names(layout: Layout) -> dict[str, list[str]]:
    return {i.id: list(i.names) for i in PodmanStore(layout.podman_store).images()}


def _fail_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last write of the step fails, as on a full inode table."""

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pointers, "write_image_metadata", full)


def test_a_new_image_whose_record_fails_leaves_no_link_and_no_podman_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path)
    _publish(layout, _resolved_as("other", "registry.test/team/other:1"))  # already there
    before = _names(layout)
    _fail_the_record(monkeypatch)
    image = _resolved_as("new")
    with pytest.raises(OSError, match="No space"):
        _publish(layout, image)
    assert not os.path.lexists(layout.public_path(image.reference))
    assert _names(layout) == before  # the store as it was: no entry names the image
    store = layout.podman_store
    assert not (store / "overlay-images" / image.config.digest.hex).exists()
    assert record_for(layout, image.reference) is None


def test_an_update_whose_record_fails_keeps_the_old_version_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path)
    old = _resolved_as("old")
    old_flat = _publish(layout, old)
    _fail_the_record(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        _publish(layout, _resolved_as("new"))
    assert layout.public_path(REF).resolve() == old_flat.resolve()
    assert _names(layout) == {old.config.digest.hex: [REF.simple_name]}
    record = record_for(layout, REF)
    assert record is not None
    assert record.config == old.config.digest


def test_a_name_that_fills_a_file_name_is_published(tmp_path: Path) -> None:
    repository = "team/" + "a" * 150
    for tag_length in range(240 - 151, 255 - 151 + 1):  # components of 240 to 255 bytes
        ref = f"registry.test/{repository}:{'t' * tag_length}"
        image = _resolved_as(f"len{tag_length}", ref)
        flat = _publish(Layout(tmp_path), image)
        public = Layout(tmp_path).public_path(image.reference)
        assert len(public.name.encode()) == 151 + tag_length
        assert public.resolve() == flat.resolve()
    assert not [p for p in public.parent.iterdir() if ".tmp-" in p.name]
