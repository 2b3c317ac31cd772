"""The request chokepoint: auth handshakes, retries, rate limits, typed errors, concurrency."""

from __future__ import annotations

import io
import threading
import time
from email.utils import formatdate

import pytest
import requests
import responses
import structlog

from ducc import log
from ducc.errors import AuthError, NotFound, RateLimited, RegistryError, TransientError
from ducc.oci.reference import parse_reference
from ducc.registry.client import RegistryClient
from ducc.registry.credentials import Credential, CredentialStore, _Entry
from tests.support.fake_registry import FakeRegistry, broken_body, error_body
from tests.unit.conftest import FakeTime, MakeRegistries

MANIFEST = "/v2/team/app/manifests/v1"
URL = "https://registry.test" + MANIFEST


def store(host: str, user: str, password: str) -> CredentialStore:
    return CredentialStore((_Entry(host, "test", Credential(user, password, "test")),))


def client_for(
    make: MakeRegistries, credentials: CredentialStore | None = None, **settings: object
) -> RegistryClient:
    return make(credentials, **settings).for_host("https", "registry.test")


def ok(fake: FakeRegistry, path: str = MANIFEST, body: bytes = b"{}") -> None:
    fake.rsps.add_callback(
        "GET", fake.base + path, callback=fake.guarded(lambda _r: (200, {}, body))
    )


def get(client: RegistryClient, path: str = MANIFEST) -> bytes:
    return client.fetch("GET", path, repository="team/app", limit=1 << 20).body


# --- auth -------------------------------------------------------------------------------------


def test_anonymous_bearer_token_is_fetched_once_and_reused(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    ok(fake)
    client = client_for(make_registries)
    assert get(client) == b"{}"
    assert get(client) == b"{}"
    (token_request,) = fake.token_requests
    assert "Authorization" not in token_request.headers
    assert "service=registry.test" in (token_request.url or "")
    assert "scope=repository%3Ateam%2Fapp%3Apull" in (token_request.url or "")
    probes = fake.calls("GET", "/v2/")
    assert len([c for c in probes if (c.request.url or "").endswith("/v2/")]) == 1


def test_expired_token_is_replaced(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    fake = FakeRegistry(rsps, auth="bearer", expires_in=60)
    fake.tokens.append("tok-2")
    ok(fake)
    client = client_for(make_registries)
    get(client)
    fake_time.now += 61
    get(client)
    assert len(fake.token_requests) == 2
    last = fake.calls("GET", MANIFEST)[-1]
    assert last.request.headers["Authorization"] == "Bearer tok-2"


def test_refused_token_is_refreshed_once(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    client = client_for(make_registries)
    ok(fake)
    get(client)
    fake.tokens = ["tok-2"]  # the registry now refuses tok-1 (revoked before expiry)
    assert get(client) == b"{}"
    assert len(fake.token_requests) == 2


def test_token_refused_twice_is_an_auth_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    rsps.add(
        "GET",
        URL,
        status=401,
        headers={"WWW-Authenticate": fake.challenge},
        body=error_body("UNAUTHORIZED", "authentication required"),
    )
    with pytest.raises(AuthError, match="HTTP 401 UNAUTHORIZED: authentication required") as info:
        get(client_for(make_registries))
    assert info.value.code == "UNAUTHORIZED"
    assert len(fake.token_requests) == 2
    assert len(fake.calls("GET", MANIFEST)) == 2  # never a third time


def test_credentials_go_to_the_token_realm_only(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    ok(fake)
    get(client_for(make_registries, store("registry.test", "alice", "pw")))
    (token_request,) = fake.token_requests
    assert token_request.headers["Authorization"] == "Basic YWxpY2U6cHc="
    (manifest_call,) = fake.calls("GET", MANIFEST)
    assert manifest_call.request.headers["Authorization"] == "Bearer tok-1"


def test_refused_credentials_fall_back_to_an_anonymous_token(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer")
    fake.refuse_credentials = True
    ok(fake)
    assert get(client_for(make_registries, store("registry.test", "alice", "wrong"))) == b"{}"
    with_credentials, anonymous = fake.token_requests
    assert "Authorization" in with_credentials.headers
    assert "Authorization" not in anonymous.headers


def test_basic_auth_where_the_registry_asks_for_it(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="basic", credentials=("alice", "pw"))
    ok(fake)
    assert get(client_for(make_registries, store("registry.test", "alice", "pw"))) == b"{}"
    (call,) = fake.calls("GET", MANIFEST)
    assert call.request.headers["Authorization"] == "Basic YWxpY2U6cHc="


def test_basic_auth_without_credentials_says_what_to_do(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="basic", credentials=("alice", "pw"))
    ok(fake)
    with pytest.raises(AuthError) as info:
        get(client_for(make_registries))
    assert "auth.json" in (info.value.hint or "")


def test_secrets_never_reach_the_log(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    fake = FakeRegistry(rsps, auth="bearer", issued="secret-token-value")
    ok(fake)
    stream = io.StringIO()
    log.configure(verbosity=2, fmt="json", stream=stream)
    try:
        get(client_for(make_registries, store("registry.test", "alice", "secret-password")))
    finally:
        structlog.reset_defaults()
    text = stream.getvalue()
    assert "registry_request" in text
    assert "secret-password" not in text
    assert "secret-token-value" not in text


# --- retries ----------------------------------------------------------------------------------


def test_429_waits_as_long_as_retry_after_says(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    rsps.add(
        "GET", URL, status=429, headers={"Retry-After": "7"}, body=error_body("TOOMANYREQUESTS")
    )
    rsps.add("GET", URL, body=b"{}")
    assert get(client_for(make_registries)) == b"{}"
    assert fake_time.sleeps == [7.0]


def test_retry_after_as_an_http_date(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    when = formatdate(time.time() + 30, usegmt=True)
    rsps.add("GET", URL, status=503, headers={"Retry-After": when})
    rsps.add("GET", URL, body=b"{}")
    get(client_for(make_registries))
    (slept,) = fake_time.sleeps
    assert 25 < slept <= 30


def test_retry_after_beyond_the_bound_fails_at_once(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, status=429, headers={"Retry-After": "3600"}, body="pull rate limit")
    with pytest.raises(RateLimited, match="HTTP 429: pull rate limit"):
        get(client_for(make_registries, max_wait=300))
    assert fake_time.sleeps == []


def test_5xx_then_success_backs_off_exponentially(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    for _ in range(3):
        rsps.add("GET", URL, status=502)
    rsps.add("GET", URL, body=b"{}")
    assert get(client_for(make_registries, backoff_initial=1.0)) == b"{}"
    assert len(fake_time.sleeps) == 3
    first, second, third = fake_time.sleeps
    assert 1 <= first <= 2
    assert 2 <= second <= 3
    assert 4 <= third <= 5


def test_a_short_backoff_is_not_swamped_by_jitter(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    for _ in range(3):
        rsps.add("GET", URL, status=503)
    rsps.add("GET", URL, body=b"{}")
    assert get(client_for(make_registries, backoff_initial=0.01)) == b"{}"
    first, second, third = fake_time.sleeps
    assert 0.01 <= first <= 0.02
    assert 0.02 <= second <= 0.03
    assert 0.04 <= third <= 0.05


def test_persistent_5xx_gives_up_after_the_attempts(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, status=500, body=error_body("UNKNOWN", "boom"))
    with pytest.raises(TransientError, match="HTTP 500 UNKNOWN: boom"):
        get(client_for(make_registries, retry_attempts=3))
    assert len(rsps.calls) == 1 + 3  # probe, three attempts


def test_connection_errors_and_timeouts_are_retried(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, body=requests.ConnectionError("refused"))
    rsps.add("GET", URL, body=requests.ReadTimeout("read timed out"))
    rsps.add("GET", URL, body=b"{}")
    assert get(client_for(make_registries, connect_timeout=3, read_timeout=9)) == b"{}"
    assert rsps.calls[-1].request.req_kwargs["timeout"] == (3, 9)  # type: ignore[attr-defined]


def test_timeouts_that_persist_become_a_transient_error(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(TransientError, match="ConnectTimeout"):
        get(client_for(make_registries, retry_attempts=2))


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (404, "NAME_UNKNOWN", NotFound),
        (404, "MANIFEST_UNKNOWN", NotFound),
        (401, "UNAUTHORIZED", AuthError),
        (403, "DENIED", AuthError),
        (400, "NAME_INVALID", RegistryError),
    ],
)
def test_error_bodies_become_typed_errors_without_retries(
    rsps: responses.RequestsMock,
    make_registries: MakeRegistries,
    status: int,
    code: str,
    error: type[RegistryError],
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, status=status, body=error_body(code, "told you"))
    with pytest.raises(error) as info:
        get(client_for(make_registries))
    assert type(info.value) is error
    assert (info.value.code, info.value.status) == (code, status)
    assert f"registry.test: GET {MANIFEST}: HTTP {status} {code}: told you" == str(info.value)
    assert len(fake_calls := rsps.calls) <= 3
    assert fake_calls[-1].request.url == URL


# --- rate limits and concurrency ------------------------------------------------------------


def test_exhausted_rate_limit_holds_back_the_next_counted_request(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    limit = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600"}
    rsps.add("GET", URL, body=b"{}", headers=limit)
    rsps.add("HEAD", URL, headers=limit)
    client = client_for(make_registries)
    client.fetch("GET", MANIFEST, repository="team/app", limit=100, counted=True)
    client.fetch("HEAD", MANIFEST, repository="team/app", limit=0)  # HEAD does not wait
    assert fake_time.sleeps == []
    client.fetch("GET", MANIFEST, repository="team/app", limit=100, counted=True)
    assert fake_time.sleeps == [216.0]  # 21600 s / 100 pulls: when one pull frees up


def test_rate_limit_wait_beyond_the_bound_fails_without_a_request(
    rsps: responses.RequestsMock, make_registries: MakeRegistries, fake_time: FakeTime
) -> None:
    FakeRegistry(rsps)
    rsps.add("GET", URL, body=b"{}", headers={"ratelimit-remaining": "0;w=3600"})
    client = client_for(make_registries, max_wait=60)
    client.fetch("GET", MANIFEST, repository="team/app", limit=100, counted=True)
    before = len(rsps.calls)
    with pytest.raises(RateLimited, match="pull limit is exhausted"):
        client.fetch("GET", MANIFEST, repository="team/app", limit=100, counted=True)
    assert len(rsps.calls) == before
    assert fake_time.sleeps == []


def test_requests_in_flight_are_bounded_per_registry(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def slow(_request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return 200, {}, b"{}"

    rsps.add_callback("GET", URL, callback=slow)
    client = client_for(make_registries, max_concurrent=2)
    threads = [threading.Thread(target=get, args=(client,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state["peak"] == 2


def test_docker_hub_aliases_share_one_client(make_registries: MakeRegistries) -> None:
    registries = make_registries()
    hub = registries.client(parse_reference("registry.hub.docker.com/library/centos:7"))
    assert registries.client(parse_reference("docker.io/library/centos:7")) is hub
    assert hub.base_url == "https://registry-1.docker.io"
    assert registries.client(parse_reference("http://docker.io/library/centos:7")) is not hub


def test_a_body_broken_mid_transfer_is_fetched_again(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    body = b"x" * 200_000
    rsps.add("GET", URL, body=broken_body(body, 70_000))
    rsps.add("GET", URL, body=body)
    assert get(client_for(make_registries)) == body


def test_an_oversized_body_is_refused(
    rsps: responses.RequestsMock, make_registries: MakeRegistries
) -> None:
    FakeRegistry(rsps)
    rsps.add_callback("GET", URL, callback=lambda _r: (200, {}, broken_body(b"y" * 5000, 5000)))
    client = client_for(make_registries)
    with pytest.raises(RegistryError, match="body exceeds 4096 bytes"):
        client.fetch("GET", MANIFEST, repository="team/app", limit=4096)
