"""Pointers to a converted image: the podman entry's creation time comes from the config."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ducc.digest import Digest
from ducc.layout import Layout
from ducc.oci import ImageManifest, parse_config, parse_manifest
from ducc.podman import PodmanStore
from ducc.pointers import Converted, image_created, write_pointers
from ducc.recorded import record_for
from ducc.reference import parse_reference
from ducc.registry.manifests import ResolvedImage
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
