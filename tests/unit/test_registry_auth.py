"""Challenge parsing (RFC 7235) and the token cache's lifetime rules."""

from __future__ import annotations

from ducc.registry.auth import Challenge, TokenCache, TokenKey, parse_challenges
from tests.unit.conftest import FakeTime


def test_docker_hub_challenge_with_comma_in_the_scope() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    (challenge,) = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.get("realm") == "https://auth.docker.io/token"
    assert challenge.get("service") == "registry.docker.io"
    assert challenge.get("scope") == "repository:samalba/my-app:pull,push"


def test_several_challenges_spaces_and_escapes() -> None:
    header = (
        'Basic realm="a \\"quoted\\" realm", charset="UTF-8", '
        "Bearer realm=https://ghcr.io/token , service=ghcr.io,error=insufficient_scope"
    )
    basic, bearer = parse_challenges(header)
    assert basic == Challenge("basic", (("realm", 'a "quoted" realm'), ("charset", "UTF-8")))
    assert bearer.get("realm") == "https://ghcr.io/token"
    assert bearer.get("service") == "ghcr.io"
    assert bearer.get("error") == "insufficient_scope"


def test_token68_and_bare_schemes() -> None:
    negotiate, basic = parse_challenges("Negotiate abc123==, Basic")
    assert negotiate.get("token68") == "abc123=="
    assert basic == Challenge("basic")
    assert parse_challenges("") == []


def test_scheme_and_parameter_names_are_case_insensitive() -> None:
    (challenge,) = parse_challenges('BEARER Realm="https://x/token"')
    assert challenge.scheme == "bearer"
    assert challenge.get("REALM") == "https://x/token"


KEY = TokenKey("https://auth.test/token", "registry.test", "repository:a:pull", "")


def test_token_lives_for_most_of_expires_in(fake_time: FakeTime) -> None:
    cache = TokenCache(fake_time)
    cache.put(KEY, "t", 300)
    fake_time.now += 230
    assert cache.get(KEY) == "t"
    fake_time.now += 20  # past 80 % of 300 s
    assert cache.get(KEY) is None


def test_missing_expires_in_means_sixty_seconds(fake_time: FakeTime) -> None:
    cache = TokenCache(fake_time)
    cache.put(KEY, "t", None)
    fake_time.now += 47
    assert cache.get(KEY) == "t"
    fake_time.now += 2
    assert cache.get(KEY) is None


def test_tokens_are_kept_per_scope_and_identity(fake_time: FakeTime) -> None:
    cache = TokenCache(fake_time)
    cache.put(KEY, "anonymous", 300)
    other = TokenKey(KEY.realm, KEY.service, KEY.scope, "alice")
    assert cache.get(other) is None
    cache.put(other, "alice-token", 300)
    assert (cache.get(KEY), cache.get(other)) == ("anonymous", "alice-token")


def test_drop_forgets_only_the_refused_token(fake_time: FakeTime) -> None:
    cache = TokenCache(fake_time)
    cache.put(KEY, "new", 300)
    cache.drop(KEY, "old")  # another thread already replaced the refused one
    assert cache.get(KEY) == "new"
    cache.drop(KEY, "new")
    assert cache.get(KEY) is None
