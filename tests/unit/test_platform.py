"""Platforms: the spellings users and registries write compare equal; labels name directories."""

from __future__ import annotations

import pytest

from ducc.errors import BadPlatform
from ducc.oci.platform import Platform, normalize_platform, parse_platform


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("Linux/ARM64/V8", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/arm/6", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("linux/ppc64le", Platform("linux", "ppc64le")),
    ],
)
def test_parse_platform_normalises_like_containerd(text: str, want: Platform) -> None:
    assert parse_platform(text) == want


def test_labels_are_ducc_multiarch_directory_names() -> None:
    assert parse_platform("linux/amd64").label == "amd64"
    assert parse_platform("linux/arm64/v8").label == "arm64"
    assert parse_platform("linux/arm/v7").label == "arm:v7"
    assert str(parse_platform("linux/arm/v7")) == "linux/arm/v7"


def test_attestation_platform_is_unknown() -> None:
    assert normalize_platform("unknown", "unknown").is_unknown
    assert not normalize_platform("linux", "amd64").is_unknown


@pytest.mark.parametrize("text", ["amd64", "linux/", "linux/amd64/v8/x", "linux/am d64", ""])
def test_bad_platforms_are_refused(text: str) -> None:
    with pytest.raises(BadPlatform, match="os/architecture"):
        parse_platform(text)
