"""Tag lists follow `Link` pages to the end; wildcards keep what matches, or fail loudly."""

from __future__ import annotations

import pytest
import responses

from ducc.errors import NoMatchingTags, RegistryError
from ducc.oci.reference import parse_reference
from ducc.registry.tags import expand, list_tags
from tests.support.fake_registry import FakeRegistry
from tests.unit.conftest import MakeRegistries

PAGES = [["1.0", "1.1"], ["1.2", "1.20"], ["2.0", "latest"]]


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-link", "absolute-link"])
def test_tag_list_follows_every_page(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, absolute: bool
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    fake.tags("team/app", PAGES, absolute=absolute)
    client = make_registries().for_host("https", "registry.test")
    assert list_tags(client, "team/app") == [t for page in PAGES for t in page]
    assert len(fake.calls("GET", "/tags/list")) == 3
    assert len(fake.token_requests) == 1


def test_first_page_size_is_sent_when_configured(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    rsps.add("GET", fake.base + "/v2/team/app/tags/list?n=2", json={"tags": ["a"]})
    client = make_registries(tags_page_size=2).for_host("https", "registry.test")
    assert list_tags(client, "team/app") == ["a"]


def test_page_cap_is_a_clear_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).tags("team/app", PAGES)
    client = make_registries(page_cap=2).for_host("https", "registry.test")
    with pytest.raises(RegistryError, match="more than 2 pages; stopped"):
        list_tags(client, "team/app")


def test_a_link_cycle_is_refused(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    url = fake.base + "/v2/team/app/tags/list"
    rsps.add(
        "GET", url, json={"tags": ["a"]}, headers={"Link": '</v2/team/app/tags/list>; rel="next"'}
    )
    with pytest.raises(RegistryError, match="loop back"):
        list_tags(make_registries().for_host("https", "registry.test"), "team/app")


def test_a_link_to_another_host_is_refused(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    rsps.add(
        "GET",
        fake.base + "/v2/team/app/tags/list",
        json={"tags": ["a"]},
        headers={"Link": '<https://elsewhere.test/v2/x/tags/list?last=a>; rel="next"'},
    )
    with pytest.raises(RegistryError, match="leaves the registry"):
        list_tags(make_registries().for_host("https", "registry.test"), "team/app")


def test_wildcard_keeps_matching_tags_sorted(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).tags("team/app", [["1.2", "1.1"], ["2.0", "1.0"]])  # unsorted, as 2.8
    ref = parse_reference("registry.test/team/app:1.?")
    found = expand(make_registries().client(ref), ref)
    assert [str(r) for r in found] == [
        "https://registry.test/team/app:1.0",
        "https://registry.test/team/app:1.1",
        "https://registry.test/team/app:1.2",
    ]


def test_dot_is_literal_and_star_spans(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).tags("team/app", [["1.2", "1x2", "1.2.3", "1.20"]])
    ref = parse_reference("registry.test/team/app:1.2*")
    assert [r.tag for r in expand(make_registries().client(ref), ref)] == ["1.2", "1.2.3", "1.20"]


def test_a_pattern_matching_nothing_names_the_registry(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).tags("team/app", PAGES)
    ref = parse_reference("registry.test/team/app:3.*")
    with pytest.raises(NoMatchingTags, match=r"among the 6 tags registry.test lists for team/app"):
        expand(make_registries().client(ref), ref)


def test_invalid_tags_from_the_registry_are_skipped(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps).tags("team/app", [["v1", "v/../../etc", "-v2", "v3"]])
    ref = parse_reference("registry.test/team/app:*")
    assert [r.tag for r in expand(make_registries().client(ref), ref)] == ["v1", "v3"]


def test_concrete_reference_needs_no_request(make_registries: MakeRegistries) -> None:
    ref = parse_reference("registry.test/team/app:v1")
    assert expand(make_registries().client(ref), ref) == [ref]


def test_empty_repository_with_null_tags(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps)
    rsps.add("GET", fake.base + "/v2/team/app/tags/list", json={"name": "team/app", "tags": None})
    ref = parse_reference("registry.test/team/app:*")
    with pytest.raises(NoMatchingTags, match="among the 0 tags"):
        expand(make_registries().client(ref), ref)
