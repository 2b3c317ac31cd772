"""Image reference grammar, table-driven: each row is input -> parts, or input -> error text."""

from __future__ import annotations

import time

import pytest

from ducc.errors import BadReference
from ducc.oci.reference import TagPattern, parse_reference, suggested_glob

H64 = "a" * 64
H128 = "b" * 128

# (input, scheme, registry, repository, tag, digest, api_host)
VALID = [
    (
        "https://registry.hub.docker.com/library/centos:centos7",
        "https",
        "registry.hub.docker.com",
        "library/centos",
        "centos7",
        None,
        "registry-1.docker.io",
    ),
    (
        "registry.hub.docker.com/library/centos:centos7",
        "https",
        "registry.hub.docker.com",
        "library/centos",
        "centos7",
        None,
        "registry-1.docker.io",
    ),
    (
        "docker.io/centos:7",
        "https",
        "docker.io",
        "library/centos",
        "7",
        None,
        "registry-1.docker.io",
    ),
    (
        "index.docker.io/ubuntu",
        "https",
        "index.docker.io",
        "library/ubuntu",
        "latest",
        None,
        "registry-1.docker.io",
    ),
    (
        "registry-1.docker.io/atlas/analysisbase:21.2.1*",
        "https",
        "registry-1.docker.io",
        "atlas/analysisbase",
        "21.2.1*",
        None,
        "registry-1.docker.io",
    ),
    (
        "https://gitlab-p4n.aip.de:5005/compute4punch/container-stacks/htcondor-wn:latest",
        "https",
        "gitlab-p4n.aip.de:5005",
        "compute4punch/container-stacks/htcondor-wn",
        "latest",
        None,
        "gitlab-p4n.aip.de:5005",
    ),
    (
        "http://127.0.0.1:5000/test/img:v1",
        "http",
        "127.0.0.1:5000",
        "test/img",
        "v1",
        None,
        "127.0.0.1:5000",
    ),
    ("localhost:5000/img:1.0", "https", "localhost:5000", "img", "1.0", None, "localhost:5000"),
    ("localhost/img", "https", "localhost", "img", "latest", None, "localhost"),
    ("http://[::1]:5000/a/b:c", "http", "[::1]:5000", "a/b", "c", None, "[::1]:5000"),
    (f"ghcr.io/o/r@sha256:{H64}", "https", "ghcr.io", "o/r", None, f"sha256:{H64}", "ghcr.io"),
    (f"ghcr.io/o/r:v2@sha256:{H64}", "https", "ghcr.io", "o/r", "v2", f"sha256:{H64}", "ghcr.io"),
    (f"quay.io/o/r@sha512:{H128}", "https", "quay.io", "o/r", None, f"sha512:{H128}", "quay.io"),
    (
        "https://ghcr.io/watonomous/actions-runner-image:*",
        "https",
        "ghcr.io",
        "watonomous/actions-runner-image",
        "*",
        None,
        "ghcr.io",
    ),
    (
        "HTTPS://Quay.IO/stimela/casa:1.7.1",
        "https",
        "quay.io",
        "stimela/casa",
        "1.7.1",
        None,
        "quay.io",
    ),
    (
        "nvcr.io/nvidia/tritonserver:24.11-py3",
        "https",
        "nvcr.io",
        "nvidia/tritonserver",
        "24.11-py3",
        None,
        "nvcr.io",
    ),
    (
        "quay.io/a__b/c-d/e.f_g:TAG_1.x-Y",
        "https",
        "quay.io",
        "a__b/c-d/e.f_g",
        "TAG_1.x-Y",
        None,
        "quay.io",
    ),
    ("quay.io/a---b/c:_x", "https", "quay.io", "a---b/c", "_x", None, "quay.io"),
    (
        "r.example.org/x:" + "t" * 128,
        "https",
        "r.example.org",
        "x",
        "t" * 128,
        None,
        "r.example.org",
    ),
    ("r.example.org/x:v[0-9].?", "https", "r.example.org", "x", "v[0-9].?", None, "r.example.org"),
    ("https://myregistry/x:1", "https", "myregistry", "x", "1", None, "myregistry"),
]


@pytest.mark.parametrize(
    ("text", "scheme", "registry", "repository", "tag", "digest", "api_host"), VALID
)
def test_valid_references_parse_into_parts(
    text: str,
    scheme: str,
    registry: str,
    repository: str,
    tag: str | None,
    digest: str | None,
    api_host: str,
) -> None:
    ref = parse_reference(text)
    assert (ref.scheme, ref.registry, ref.repository, ref.tag) == (
        scheme,
        registry,
        repository,
        tag,
    )
    assert (str(ref.digest) if ref.digest else None) == digest
    assert ref.api_host == api_host


# (input, fragment of the error message)
INVALID = [
    ("", "empty image reference"),
    ("library/centos:7", "names no registry"),
    ("centos", "names no registry"),
    ("registry.hub.docker.com", "has no repository"),
    ("registry.hub.docker.com/", "has no repository"),
    ("docker://docker.io/centos:7", "unsupported scheme 'docker'"),
    ("oci://quay.io/a/b", "unsupported scheme"),
    ("quay.io/Stimela/casa:1", "must be lowercase"),
    ("quay.io/a/../b:1", "'..' is not allowed"),
    ("quay.io/a/./b:1", "'.' is not allowed"),
    ("quay.io/a//b:1", "empty path component"),
    ("quay.io/a/b/:1", "empty path component"),
    ("quay.io/a/b:", "empty tag"),
    ("quay.io/a/b@", "empty digest"),
    ("quay.io/a/b:1:2", "too many ':'"),
    ("quay.io/a/b@sha256:abc", "needs 64 hex characters, got 3"),
    (f"quay.io/a/b@sha256:{'A' * 64}", "lowercase hexadecimal"),
    (f"quay.io/a/b@md5:{H64}", "unsupported algorithm 'md5'"),
    (f"quay.io/a/b@{H64}", "no algorithm"),
    (f"quay.io/a/b@sha512:{H64}", "needs 128 hex characters"),
    (f"quay.io/a/b@sha256:{H64}@sha256:{H64}", "more than one '@'"),
    ("quay.io/a/b:" + "t" * 129, "tag is 129 characters"),
    ("quay.io/a/b:.hidden", "bad tag"),
    ("quay.io/a/b:-x", "bad tag"),
    ("quay.io/a/b:v1+meta", "bad tag"),
    ("quay.io:0/a/b", "bad port"),
    ("quay.io:70000/a/b", "bad port"),
    ("quay.io:abc/a/b", "bad port"),
    ("quay.io/a b:1", "whitespace"),
    (" quay.io/a/b:1", "whitespace"),
    ("quay.io/a/b:1\n", "whitespace"),
    ("https://user:hunter2@quay.io/a/b:1", "carries credentials"),
    ("quay..io/a/b", "not a valid host name"),
    ("-quay.io/a/b", "not a valid host name"),
    ("http://[zz::1]:5000/a", "bad IPv6"),
    ("quay.io/a/b:1.[0-9", "never closed"),
    ("quay.io/a/b:[]x*", "bad wildcard tag"),
    (f"quay.io/a/b:1.*@sha256:{H64}", "cannot have a digest"),
    ("quay.io/a/b:1.*/x", "bad repository component 'b:1.*'"),
    ("quay.io/a_/b", "bad repository component"),
    ("quay.io/a/b#frag", "contains '#'"),
    ("quay.io/" + "a" * 250 + ":1", "exceed 255"),
    ("quay.io/a/b:v1[z-a]", "bad range"),
]


@pytest.mark.parametrize(("text", "fragment"), INVALID)
def test_invalid_references_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(BadReference) as info:
        parse_reference(text)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "https://alice:hunter2@quay.io/a/b:1",
        "alice:hunter2@quay.io/a/b:1",
        "https://alice:hunter2@quay.io",
        "https://alice:hun/ter2@quay.io/a/b:1",  # '/' in the password: no port 'hun'
        "alice:hunter2 x@quay.io/a/b:1",  # whitespace: checked after the credentials
        "ftp://alice:hunter2@quay.io/a/b:1",  # a bad scheme: checked after them too
        "https://alice:hun#ter2@quay.io/a/b:1",
        "https://alice:hun@ter2@quay.io/a/b:1",
        "alice:hun://ter2@quay.io/a/b:1",  # '://' in the password is no scheme
    ],
)
def test_credentials_never_echoed(text: str) -> None:
    with pytest.raises(BadReference) as info:
        parse_reference(text)
    assert "carries credentials" in str(info.value)
    assert "hun" not in str(info.value)
    assert "alice" not in str(info.value)


def test_many_at_signs_are_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(BadReference):
        parse_reference("quay.io/" + "@/" * 500_000)
    assert time.monotonic() - started < 1.0


def test_no_tag_means_latest_and_is_flagged() -> None:
    ref = parse_reference("quay.io/a/b")
    assert ref.tag == "latest"
    assert ref.tag_is_default
    assert not parse_reference("quay.io/a/b:latest").tag_is_default


def test_digest_wins_for_pulling_and_tag_names_the_path() -> None:
    ref = parse_reference(f"ghcr.io/o/r:v2@sha256:{H64}")
    assert ref.pull_reference == f"sha256:{H64}"
    assert ref.simple_name == "ghcr.io/o/r:v2"
    assert ref.reference == f":v2@sha256:{H64}"


def test_digest_only_reference_names_its_path_by_digest() -> None:
    ref = parse_reference(f"ghcr.io/o/r@sha256:{H64}")
    assert ref.simple_name == f"ghcr.io/o/r:sha256:{H64}"


def test_docker_hub_path_keeps_host_as_written() -> None:
    ref = parse_reference("https://registry.hub.docker.com/centos:centos7")
    assert ref.simple_name == "registry.hub.docker.com/library/centos:centos7"
    assert ref.base_url == "https://registry-1.docker.io"


def test_library_prefix_only_on_docker_hub() -> None:
    assert parse_reference("quay.io/centos:7").repository == "centos"


def test_wildcard_pulls_only_after_expansion() -> None:
    ref = parse_reference("quay.io/a/b:1.*")
    assert ref.is_wildcard
    with pytest.raises(BadReference, match="expanded"):
        _ = ref.pull_reference
    assert ref.with_tag("1.2").pull_reference == "1.2"


GLOB_CASES = [
    ("21.2.1*", "21.2.10", True),
    ("21.2.1*", "21.2.100-20191127", True),
    ("21.2.1*", "21.2.15-20180118", True),
    ("21.2.1*", "21.3.10", False),
    ("21.2.1*", "21x2x10", False),  # '.' is a literal dot, not a regex wildcard
    ("*", "anything-at-all", True),
    ("v?", "v1", True),
    ("v?", "v10", False),
    ("v[0-9]", "v7", True),
    ("v[!0-9]", "v7", False),
    ("v[!0-9]", "vx", True),
]


@pytest.mark.parametrize(("pattern", "tag", "expected"), GLOB_CASES)
def test_wildcard_tags_are_shell_globs(pattern: str, tag: str, expected: bool) -> None:
    ref = parse_reference(f"quay.io/a/b:{pattern}")
    assert ref.tag_glob().matches(tag) is expected


# DUCC expanded a tag only when it held '*', turned each '*' into '.*' and kept the tags the
# whole regular expression matches (`filterUsingGlob`, leftmost-longest match == the tag).
DUCC_REGEX_CASES = [
    ("1.+*", "1.1", True),
    ("1.+*", "1x", True),  # '.' is any character and '+' repeats it
    ("1.+*", "1", False),
    ("v.*-cuda", "v1.2-cuda", True),
    ("v.*-cuda", "v-cuda", False),  # DUCC's '.*' became '..*': at least one character
    ("(7|8).*", "8.1", True),
    ("(7|8).*", "9.1", False),
    ("^v1.*$", "v1.0", True),
    ("^v1.*$", "xv1.0", False),
    (r"1\.2.*", "1.2.3", True),
    (r"1\.2.*", "1x2.3", False),
]


@pytest.mark.parametrize(("pattern", "tag", "expected"), DUCC_REGEX_CASES)
def test_a_ducc_regex_wildcard_matches_as_ducc_matched(
    pattern: str, tag: str, expected: bool
) -> None:
    ref = parse_reference(f"quay.io/a/b:{pattern}")
    assert ref.pattern is TagPattern.DUCC_REGEX
    assert ref.is_wildcard
    assert ref.tag_glob().matches(tag) is expected
    glob = suggested_glob(pattern)
    if glob is not None:  # the suggested glob matches exactly what DUCC's reading matches
        assert parse_reference(f"quay.io/a/b:{glob}").tag_glob().matches(tag) is expected


def test_a_ducc_regex_that_does_not_compile_is_refused() -> None:
    with pytest.raises(BadReference, match="not a regular expression"):
        parse_reference("quay.io/a/b:(1.*")


def test_regex_signs_without_a_star_make_a_literal_bad_tag_as_for_ducc() -> None:
    with pytest.raises(BadReference, match="no pattern: DUCC fetched it as a literal tag"):
        parse_reference("quay.io/a/b:1.1+")


def test_a_concrete_tag_of_a_ducc_regex_is_a_plain_reference() -> None:
    ref = parse_reference("quay.io/a/b:v.*").with_tag("v1")
    assert ref == parse_reference("quay.io/a/b:v1")
