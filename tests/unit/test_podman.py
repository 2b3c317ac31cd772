"""The podman additional image store: files and JSON as containers/storage reads them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ducc.errors import DigestMismatch, PodmanStoreError
from ducc.oci.digest import Digest
from ducc.repository.podman import PodmanStore, big_data_file_name, flat_layer_id, storage_time


@dataclass(frozen=True)
class Image:
    config: bytes
    manifest: bytes
    digest: Digest
    flat: Path

    @property
    def id(self) -> str:
        return self.digest.hex


def make_image(repo: Path, label: str, files: dict[str, bytes] | None = None) -> Image:
    """A plausible config + manifest and a flat tree holding `files`."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Env": [f"LABEL={label}"]}}
    ).encode()
    digest = Digest.of(config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": str(digest), "size": len(config)},
            "layers": [],
        }
    ).encode()
    flat = repo / ".flat" / digest.prefix / digest.hex
    flat.mkdir(parents=True)
    for name, data in (files or {"bin/tool": b"x" * 10}).items():
        (flat / name).parent.mkdir(parents=True, exist_ok=True)
        (flat / name).write_bytes(data)
    return Image(config, manifest, digest, flat)


def add(store: PodmanStore, image: Image, *names: str, created: datetime | None = None) -> None:
    store.add_image(
        image_id=image.id,
        names=names,
        flat_dir=image.flat,
        manifest=image.manifest,
        config=image.config,
        config_digest=str(image.digest),
        created=created,
    )


def images_json(store: PodmanStore) -> list[dict[str, Any]]:
    return json.loads(store.images_json.read_bytes())  # type: ignore[no-any-return]


def layers_json(store: PodmanStore) -> list[dict[str, Any]]:
    return json.loads(store.layers_json.read_bytes())  # type: ignore[no-any-return]


def names_by_id(store: PodmanStore) -> dict[str, tuple[str, ...]]:
    return {image.id: image.names for image in store.images()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "repo"


@pytest.fixture
def store(repo: Path) -> PodmanStore:
    return PodmanStore(repo / "podmanStore")


def test_image_entry_has_what_containers_storage_reads(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    add(store, image, "registry.example/team/app:1.0", created=when)
    [entry] = images_json(store)
    config_key = str(image.digest)
    manifest_digest = "sha256:" + hashlib.sha256(image.manifest).hexdigest()
    assert entry == {
        "id": image.id,
        "created": "2024-05-06T07:08:09.123456Z",
        "names": ["registry.example/team/app:1.0"],
        "digest": manifest_digest,
        "layer": flat_layer_id(image.id),
        "metadata": "{}",
        "big-data-names": ["manifest", config_key],
        "big-data-sizes": {"manifest": len(image.manifest), config_key: len(image.config)},
        "big-data-digests": {"manifest": manifest_digest, config_key: config_key},
    }


def test_big_data_files_hold_the_raw_bytes(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    add(store, image, "r/a:1")
    image_dir = store.root / "overlay-images" / image.id
    config_name = "=" + base64.b64encode(f"sha256:{image.id}".encode()).decode()
    assert (image_dir / "manifest").read_bytes() == image.manifest
    assert (image_dir / config_name).read_bytes() == image.config
    assert sorted(p.name for p in image_dir.iterdir()) == sorted([config_name, "manifest"])


def test_big_data_names_follow_containers_storage() -> None:
    assert big_data_file_name("manifest") == "manifest"
    assert big_data_file_name("sha256:ab") == "=c2hhMjU2OmFi"
    assert big_data_file_name("Manifest") == "=TWFuaWZlc3Q="


def test_layer_points_at_the_flat_tree(repo: Path, store: PodmanStore) -> None:
    files = {"a": b"1" * 100, "d/b": b"2" * 23, "d/e/c": b""}
    image = make_image(repo, "a", files)
    (image.flat / "link").symlink_to("a")
    os.link(image.flat / "a", image.flat / "hard")
    add(store, image, "r/a:1")
    layer_id = hashlib.sha256(f"cvmfs-flat-layer:{image.id}".encode()).hexdigest()
    layer_dir = store.root / "overlay" / layer_id
    assert os.readlink(layer_dir / "diff") == f"../../../.flat/{image.id[:2]}/{image.id}"
    assert (layer_dir / "diff").samefile(image.flat)
    link_id = (layer_dir / "link").read_text()
    assert re.fullmatch(r"[A-Z2-7]{26}", link_id)
    assert os.readlink(store.root / "overlay/l" / link_id) == f"../{layer_id}/diff"
    assert (store.root / "overlay/l" / link_id / "d/b").read_bytes() == b"2" * 23
    assert layers_json(store) == [
        {
            "id": layer_id,
            "created": images_json(store)[0]["created"],
            "diff-digest": f"sha256:{layer_id}",
            "diff-size": 100 + 23 + 100,  # regular files by path: the hard link counts again
        }
    ]


def test_lock_files_exist_and_are_empty(repo: Path, store: PodmanStore) -> None:
    add(store, make_image(repo, "a"), "r/a:1")
    for lock in ("overlay-images/images.lock", "overlay-layers/layers.lock"):
        assert (store.root / lock).read_bytes() == b""


def test_adding_again_changes_nothing(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    add(store, image, "r/a:1")

    def state() -> dict[str, tuple[int, int, bytes | str]]:
        return {
            str(p.relative_to(store.root)): (
                p.lstat().st_ino,
                p.lstat().st_mtime_ns,
                os.readlink(p) if p.is_symlink() else p.read_bytes(),
            )
            for p in store.root.rglob("*")
            if p.is_file() or p.is_symlink()
        }

    before = state()
    (image.flat / "grown").write_bytes(b"x" * 1000)  # the size was measured once
    add(store, image, "r/a:1")
    assert state() == before


def test_an_existing_link_id_is_reused(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    layer_dir = store.root / "overlay" / flat_layer_id(image.id)
    layer_dir.mkdir(parents=True)
    (layer_dir / "link").write_text("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    add(store, image, "r/a:1")
    assert (layer_dir / "link").read_text() == "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    assert (store.root / "overlay/l/ABCDEFGHIJKLMNOPQRSTUVWXYZ").samefile(image.flat)


def test_names_merge_on_the_same_image(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    add(store, image, "r/a:1", "r/a:latest")
    add(store, image, "r/a:latest", "r/a:stable")
    assert names_by_id(store) == {image.id: ("r/a:1", "r/a:latest", "r/a:stable")}


def test_a_name_moves_to_the_image_it_is_added_to(repo: Path, store: PodmanStore) -> None:
    old, new = make_image(repo, "old"), make_image(repo, "new")
    add(store, old, "r/a:latest", "r/a:1")
    add(store, new, "r/a:latest")
    assert names_by_id(store) == {old.id: ("r/a:1",), new.id: ("r/a:latest",)}
    add(store, new, "r/a:1")
    assert names_by_id(store) == {old.id: (), new.id: ("r/a:latest", "r/a:1")}
    assert "names" not in images_json(store)[0]  # as Go's omitempty writes it


def test_remove_names_keeps_the_images(repo: Path, store: PodmanStore) -> None:
    a, b = make_image(repo, "a"), make_image(repo, "b")
    add(store, a, "r/a:1", "r/a:2")
    add(store, b, "r/b:1")
    store.remove_names(["r/a:2", "r/b:1", "r/unknown:1"])
    assert names_by_id(store) == {a.id: ("r/a:1",), b.id: ()}


def test_remove_image_takes_its_layer_and_files(repo: Path, store: PodmanStore) -> None:
    a, b = make_image(repo, "a"), make_image(repo, "b")
    add(store, a, "r/a:1")
    add(store, b, "r/b:1")
    link_a = (store.root / "overlay" / flat_layer_id(a.id) / "link").read_text()
    assert store.remove_image(a.id) is True
    assert [image.id for image in store.images()] == [b.id]
    assert [layer["id"] for layer in layers_json(store)] == [flat_layer_id(b.id)]
    assert not (store.root / "overlay-images" / a.id).exists()
    assert not (store.root / "overlay" / flat_layer_id(a.id)).exists()
    assert not os.path.lexists(store.root / "overlay/l" / link_a)
    assert a.flat.is_dir(), "the flat tree belongs to the repository, not the store"
    assert store.remove_image(a.id) is False
    assert store.referenced_flat_dirs() == {b.flat}


def test_referenced_flat_dirs(repo: Path, store: PodmanStore) -> None:
    a, b = make_image(repo, "a"), make_image(repo, "b")
    add(store, a, "r/a:1")
    add(store, b)
    assert store.referenced_flat_dirs() == {a.flat, b.flat}


def test_entries_written_by_others_are_kept_and_completed(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    foreign = {"id": "f" * 64, "names": ["r/f:1"], "layer": "x" * 64, "flags": {"k": 1}}
    store.images_json.parent.mkdir(parents=True)
    store.images_json.write_text(json.dumps([foreign, {"id": image.id, "created": "then"}]))
    add(store, image, "r/a:1")
    first, second = images_json(store)
    assert first == foreign
    assert second["created"] == "then"
    assert second["layer"] == flat_layer_id(image.id)
    assert second["big-data-names"] == ["manifest", str(image.digest)]


def test_config_must_match_its_digest(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    with pytest.raises(DigestMismatch):
        store.add_image(
            image_id=image.id,
            names=["r/a:1"],
            flat_dir=image.flat,
            manifest=image.manifest,
            config=image.config + b" ",
            config_digest=str(image.digest),
        )
    assert not store.images_json.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image_id": "0" * 64}, "is not the config digest"),
        ({"image_id": "ABC"}, "64 lowercase hex"),
        ({"names": ["has space:1"]}, "printable without spaces"),
        ({"names": ["new\nline"]}, "printable without spaces"),
        ({"flat_dir": Path("/elsewhere")}, "outside the repository"),
    ],
)
def test_bad_input_is_refused(
    repo: Path, store: PodmanStore, change: dict[str, Any], message: str
) -> None:
    image = make_image(repo, "a")
    arguments: dict[str, Any] = {
        "image_id": image.id,
        "names": ["r/a:1"],
        "flat_dir": image.flat,
        "manifest": image.manifest,
        "config": image.config,
        "config_digest": str(image.digest),
    }
    with pytest.raises(PodmanStoreError, match=message):
        store.add_image(**{**arguments, **change})


def test_a_missing_flat_tree_is_refused(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    image.flat.rename(repo / "moved")
    with pytest.raises(PodmanStoreError, match="not a directory"):
        add(store, image, "r/a:1")


def test_a_corrupt_images_json_is_reported(repo: Path, store: PodmanStore) -> None:
    store.images_json.parent.mkdir(parents=True)
    store.images_json.write_text("[{")
    with pytest.raises(PodmanStoreError, match="not valid JSON"):
        store.images()
    store.images_json.write_text('{"id": 1}')
    with pytest.raises(PodmanStoreError, match="expected a list"):
        store.remove_names(["r/a:1"])


def test_no_temporary_files_are_left(repo: Path, store: PodmanStore) -> None:
    a, b = make_image(repo, "a"), make_image(repo, "b")
    add(store, a, "r/a:1")
    add(store, b, "r/a:1")
    store.remove_image(a.id)
    assert not list(store.root.rglob(".*"))


def test_storage_time_is_utc_rfc3339() -> None:
    local = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).astimezone()
    assert storage_time(local) == "2024-01-01T12:00:00.000000Z"


def test_a_name_left_on_two_images_is_repaired(repo: Path, store: PodmanStore) -> None:
    # DUCC's writer left a moved tag on the old image as well; podman then refuses the store.
    old, new = make_image(repo, "old"), make_image(repo, "new")
    add(store, old, "r/a:latest", "r/a:1")
    add(store, new, "r/a:2")
    entries = images_json(store)
    entries[1]["names"] = ["r/a:2", "r/a:latest"]
    store.images_json.write_text(json.dumps(entries))
    add(store, make_image(repo, "other"), "r/other:1")
    names = names_by_id(store)
    assert (names[old.id], names[new.id]) == (("r/a:1",), ("r/a:2", "r/a:latest"))


def test_a_layer_another_layer_builds_on_is_kept(repo: Path, store: PodmanStore) -> None:
    image = make_image(repo, "a")
    add(store, image, "r/a:1")
    layer_id = flat_layer_id(image.id)
    child = {"id": "c" * 64, "parent": layer_id, "diff-digest": "sha256:" + "c" * 64}
    store.layers_json.write_text(json.dumps([*layers_json(store), child]))
    assert store.remove_image(image.id)
    assert [layer["id"] for layer in layers_json(store)] == [layer_id, "c" * 64]
    assert (store.root / "overlay" / layer_id / "diff").is_symlink()
