"""`ducc expand` and `ducc download-manifest` as a user runs them, against a faked registry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import responses
import yaml

from tests.support.fake_registry import FakeRegistry, error_body
from tests.support.images import file, make_image, make_index, make_layer
from tests.unit.test_cli import run

AMD64 = make_image([make_layer([file("a", "1")])])
ARM64 = make_image([make_layer([file("a", "1")])], architecture="arm64")


@pytest.fixture(autouse=True)
def no_user_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG", "DUCC_AUTH_REGISTRIES"):
        monkeypatch.delenv(name, raising=False)


def recipe(tmp_path: Path, *inputs: str, ignore: str = "") -> str:
    path = tmp_path / "recipe.yaml"
    lines = ["version: 1", "cvmfs_repo: unpacked.test", "input:"]
    lines += [f"  - {item}" for item in inputs]
    if ignore:
        lines += ["ignoreErrors:", f"  - '{ignore}'"]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def registry(rsps: responses.RequestsMock) -> FakeRegistry:
    fake = FakeRegistry(rsps, auth="bearer")
    fake.tags("team/app", [["1.0", "1.1"], ["2.0"]])
    fake.image("team/app", "2.0", AMD64)
    url = f"{fake.base}/v2/team/none/tags/list"
    rsps.add("GET", url, status=404, body=error_body("NAME_UNKNOWN", "repository name not known"))
    return fake


def test_expand_prints_every_concrete_image(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    path = recipe(tmp_path, "registry.test/team/app:1.*", "registry.test/team/app:2.0")
    code, out, err = run(["expand", path], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "https://registry.test/team/app:1.0",
        "https://registry.test/team/app:1.1",
        "https://registry.test/team/app:2.0",
    ]


def test_expand_reports_failed_wishes_and_exits_1(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    path = recipe(tmp_path, "registry.test/team/app:1.*", "registry.test/team/none:*")
    code, out, err = run(["expand", path], capsys)
    assert code == 1
    assert len(out.splitlines()) == 2
    assert f"error: {path}:5: input[1]: registry.test/team/none:*: registry.test:" in err
    assert "NAME_UNKNOWN" in err


def test_expand_zero_matches_is_a_failure_naming_the_registry(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    code, _, err = run(["expand", recipe(tmp_path, "registry.test/team/app:9.*")], capsys)
    assert code == 1
    assert "no tag matches '9.*' among the 3 tags registry.test lists for team/app" in err


def test_ignore_errors_turns_a_failure_into_a_note(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    path = recipe(tmp_path, "registry.test/team/none:*", ignore="registry.test/team/none*")
    code, _, err = run(["expand", path], capsys)
    assert code == 0
    assert "ignored: " in err


def test_expand_json(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    path = recipe(tmp_path, "registry.test/team/app:1.*", "registry.test/team/none:*")
    code, out, _ = run(["expand", "--json", path], capsys)
    doc = json.loads(out)
    assert code == 1
    assert doc["images"] == [
        "https://registry.test/team/app:1.0",
        "https://registry.test/team/app:1.1",
    ]
    assert doc["wishes"][1]["error"].startswith("registry.test: GET /v2/team/none/tags/list")
    assert doc["wishes"][1]["ignored"] is False


def test_expand_single_image_and_usage_error(
    rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    code, out, _ = run(["expand", "--image", "registry.test/team/app:2.*"], capsys)
    assert (code, out) == (0, "https://registry.test/team/app:2.0\n")
    code, _, err = run(["expand"], capsys)
    assert code == 2
    assert "give at least one recipe or --image" in err


def test_download_manifest_of_an_index(
    rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeRegistry(rsps)
    index = make_index([AMD64, ARM64])
    fake.index("team/app", "multi", index)
    code, out, err = run(
        ["get-manifest", "--platform", "linux/arm64/v8", "registry.test/team/app:multi"], capsys
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["digest"] == index.digest
    assert doc["manifest"]["mediaType"] == index.media_type
    (platform,) = doc["platforms"]
    assert (platform["platform"], platform["digest"]) == ("linux/arm64", ARM64.digest)
    assert platform["config"]["digest"] == ARM64.config_digest


def test_download_manifest_multi_arch(
    rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRegistry(rsps).index("team/app", "multi", make_index([AMD64, ARM64]))
    code, out, _ = run(
        ["download-manifest", "--multi-arch", "registry.test/team/app:multi"], capsys
    )
    assert code == 0
    assert [p["label"] for p in json.loads(out)["platforms"]] == ["amd64", "arm64"]


def test_download_manifest_bad_platform_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["download-manifest", "--platform", "arm64", "registry.test/a:b"], capsys)
    assert (code, out) == (2, "")
    assert "platform 'arm64' is not os/architecture[/variant]" in err


def test_download_manifest_of_a_missing_tag_exits_1(
    rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRegistry(rsps).missing("team/app", "nope")
    code, _, err = run(["download-manifest", "registry.test/team/app:nope"], capsys)
    assert code == 1
    assert "error: registry.test: GET /v2/team/app/manifests/nope: HTTP 404 MANIFEST_UNKNOWN" in err


# --- DUCC's spellings: expand-wildcard IMAGE, download-manifest -u, create-podman-store ----


def test_expand_wildcard_takes_an_image_as_ducc_does(
    rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    code, out, err = run(["expand-wildcard", "registry.test/team/app:1*"], capsys)
    assert code == 0, err
    assert out.splitlines() == [
        "https://registry.test/team/app:1.0",
        "https://registry.test/team/app:1.1",
    ]
    code, _, err = run(["expand-wildcard", "registry.test/team/app:9*"], capsys)
    assert code == 1
    assert "no tag matches '9*'" in err


def test_expand_wildcard_output_writes_yaml_images_of_image_and_wishlists(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry(rsps)
    wishlist = recipe(tmp_path, "registry.test/team/app:2.0")
    output = tmp_path / "expanded.yaml"
    argv = ["expand-wildcard", "registry.test/team/app:1.*", "-w", wishlist, "-o", str(output)]
    code, out, err = run(argv, capsys)
    assert (code, out) == (0, ""), err
    assert yaml.safe_load(output.read_text()) == {
        "images": [
            "https://registry.test/team/app:2.0",
            "https://registry.test/team/app:1.0",
            "https://registry.test/team/app:1.1",
        ]
    }
    assert "read as DUCC read it" in err  # `1.*` is DUCC's regular expression


def test_download_manifest_accepts_ducc_s_username_and_says_it_is_unused(
    rsps: responses.RequestsMock, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRegistry(rsps).image("team/app", "1", AMD64)
    code, out, err = run(
        ["download-manifest", "-u", "cvmfsunpacker", "registry.test/team/app:1"], capsys
    )
    assert code == 0, err
    assert json.loads(out)["digest"] == AMD64.digest
    assert "-u/--username: ignored" in err


def test_create_podman_store_points_a_local_store_at_the_flat_tree_in_cvmfs(
    rsps: responses.RequestsMock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    FakeRegistry(rsps).image("team/app", "1", AMD64)
    prefix, store = tmp_path / "cvmfs", tmp_path / "store"
    argv = ["create-podman-store", "registry.test/team/app:1", "unpacked.test", str(store)]
    argv += ["--cvmfs-prefix", str(prefix)]
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "convert it first: ducc convert-single-image" in err
    assert not store.exists()
    config = AMD64.config_digest.split(":")[1]
    flat = prefix / "unpacked.test" / ".flat" / config[:2] / config
    (flat / ".singularity.d").mkdir(parents=True)
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert f'additionalImageStores = ["{store}"]' in out
    (image,) = json.loads((store / "overlay-images" / "images.json").read_text())
    assert (image["id"], image["names"]) == (config, ["registry.test/team/app:1"])
    diff = store / "overlay" / image["layer"] / "diff"
    assert os.readlink(diff) == str(flat)  # absolute: the store lives outside the repository
