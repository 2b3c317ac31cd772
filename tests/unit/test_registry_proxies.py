"""DUCC's pull-through proxies (`DUCC_<R>_PROXY`): every request for the registry goes to the
proxy, under its repository prefix; credentials given with it go to the proxy only."""

from __future__ import annotations

import pytest
import responses

from ducc.errors import CredentialsInvalid
from ducc.oci.reference import parse_reference
from ducc.registry.client import Registries
from ducc.registry.credentials import CredentialStore
from ducc.registry.manifests import get_manifest
from ducc.registry.proxies import Proxy, parse_proxy, proxies_from_environment
from ducc.registry.settings import RegistrySettings
from ducc.registry.tags import list_tags
from tests.support.fake_registry import FakeRegistry
from tests.support.images import file, make_image, make_layer
from tests.unit.conftest import FakeTime

IMAGE = make_image([make_layer([file("a", "1")])])
SECRET = "Pw-proxy-7f3a"


def environment(**extra: str) -> dict[str, str]:
    return {
        "DUCC_AUTH_REGISTRIES": "hub",
        "DUCC_hub_IDENT": "registry.hub.docker.com",
        "DUCC_hub_PROXY": "harbor.test/dockerhub",
        **extra,
    }


def registries(env: dict[str, str], fake_time: FakeTime) -> Registries:
    return Registries(
        RegistrySettings(),
        CredentialStore.from_environment({"HOME": "/nonexistent", **env}),
        sleep=fake_time.sleep,
        clock=fake_time,
        proxies=proxies_from_environment(env),
    )


def test_a_proxy_only_entry_is_accepted_and_serves_every_docker_hub_alias() -> None:
    (proxy,) = proxies_from_environment(environment())
    assert proxy == Proxy("hub", "docker.io", "harbor.test", "dockerhub")
    for host in ("registry.hub.docker.com", "docker.io", "index.docker.io"):
        assert proxy.serves(host)
    assert not proxy.serves("quay.io")
    CredentialStore.from_environment(environment())  # no USER/PASS needed with a proxy


def test_without_proxy_user_and_password_are_still_required() -> None:
    env = environment()
    del env["DUCC_hub_PROXY"]
    with pytest.raises(CredentialsInvalid, match="DUCC_hub_USER"):
        CredentialStore.from_environment(env)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("harbor.test", Proxy("r", "quay.io", "harbor.test")),
        ("harbor.test:8443/proxy/quay", Proxy("r", "quay.io", "harbor.test:8443", "proxy/quay")),
        ("http://127.0.0.1:5000", Proxy("r", "quay.io", "127.0.0.1:5000", "", "http")),
    ],
)
def test_proxy_values(value: str, expected: Proxy) -> None:
    assert parse_proxy("r", "quay.io", value) == expected


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (f"alice:{SECRET}@harbor.test", "carries credentials"),
        ("ftp://harbor.test", "unsupported scheme"),
        ("harbor test/x", "is not host[:port][/path]"),
        ("harbor.test/UPPER", "is not host[:port][/path]"),
    ],
)
def test_bad_proxy_values_name_the_variable_and_never_the_secret(value: str, fragment: str) -> None:
    with pytest.raises(CredentialsInvalid) as info:
        parse_proxy("r", "quay.io", value)
    assert info.value.message.startswith("DUCC_r_PROXY")
    assert fragment in info.value.message
    assert SECRET not in info.value.message + (info.value.hint or "")


def test_requests_go_to_the_proxy_under_its_prefix(
    rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps, "harbor.test")
    fake.image("dockerhub/library/centos", "7", IMAGE)
    fake.tags("dockerhub/library/centos", [["7", "8"]])
    ref = parse_reference("registry.hub.docker.com/centos:7")
    client = registries(environment(), fake_time).client(ref)
    manifest = get_manifest(client, ref.repository, "7")
    assert manifest.digest.hex == IMAGE.digest.split(":")[1]
    assert list_tags(client, ref.repository) == ["7", "8"]
    urls = [call.request.url for call in rsps.calls]
    assert urls == [
        "https://harbor.test/v2/",
        "https://harbor.test/v2/dockerhub/library/centos/manifests/7",
        "https://harbor.test/v2/dockerhub/library/centos/tags/list",
    ]


def test_credentials_given_with_a_proxy_go_to_the_proxy_and_it_may_refuse_them(
    rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps, "harbor.test", auth="bearer")
    fake.refuse_credentials = True  # DUCC asked its proxy anonymously: that still works
    fake.image("dockerhub/library/centos", "7", IMAGE)
    env = environment(DUCC_hub_USER="robot", DUCC_hub_PASS=SECRET)
    client = registries(env, fake_time).client(parse_reference("docker.io/centos:7"))
    get_manifest(client, "library/centos", "7")
    first, second = fake.token_requests
    assert "Authorization" in first.headers  # the proxy was offered the credentials
    assert "Authorization" not in second.headers
    assert "scope=repository%3Adockerhub%2Flibrary%2Fcentos%3Apull" in (first.url or "")


def test_registries_without_a_proxy_are_asked_directly(
    rsps: responses.RequestsMock, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps, "quay.io")
    fake.image("team/app", "1", IMAGE)
    client = registries(environment(), fake_time).client(parse_reference("quay.io/team/app:1"))
    get_manifest(client, "team/app", "1")
    assert {(call.request.url or "").split("/")[2] for call in rsps.calls} == {"quay.io"}
