"""Credentials come from DUCC's variables and the usual auth files, in that order."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ducc.errors import CredentialsInvalid
from ducc.registry.credentials import Credential, CredentialStore


def auth_file(path: Path, auths: dict[str, tuple[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = {
        key: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
        for key, (user, password) in auths.items()
    }
    path.write_text(json.dumps({"auths": encoded}))
    return path


def test_docker_config_serves_every_docker_hub_alias(tmp_path: Path) -> None:
    auth_file(tmp_path / ".docker/config.json", {"https://index.docker.io/v1/": ("bob", "pw")})
    store = CredentialStore.from_environment({"HOME": str(tmp_path)})
    for registry in ("registry.hub.docker.com", "docker.io", "registry-1.docker.io"):
        found = store.lookup(registry, "library/centos")
        assert found is not None
        assert (found.username, found.password) == ("bob", "pw")
    assert store.lookup("quay.io", "x/y") is None


def test_registry_auth_file_wins_over_docker_config(tmp_path: Path) -> None:
    auth_file(tmp_path / ".docker/config.json", {"quay.io": ("docker-user", "a")})
    special = auth_file(tmp_path / "special.json", {"quay.io": ("special-user", "b")})
    env = {"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(special)}
    found = CredentialStore.from_environment(env).lookup("quay.io", "org/image")
    assert found is not None
    assert found.username == "special-user"


def test_containers_auth_json_with_namespaced_keys(tmp_path: Path) -> None:
    runtime = tmp_path / "run"
    auth_file(
        runtime / "containers/auth.json",
        {"quay.io": ("everyone", "a"), "quay.io/team": ("team-robot", "b")},
    )
    store = CredentialStore.from_environment(
        {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(runtime)}
    )
    team = store.lookup("quay.io", "team/app")
    other = store.lookup("quay.io", "teamless/app")
    assert team is not None
    assert team.username == "team-robot"
    assert other is not None
    assert other.username == "everyone"


def test_ducc_variables_come_first(tmp_path: Path) -> None:
    auth_file(tmp_path / ".docker/config.json", {"gitlab-registry.cern.ch": ("file-user", "x")})
    env = {
        "HOME": str(tmp_path),
        "DUCC_AUTH_REGISTRIES": "gitlab,hub",
        "DUCC_gitlab_IDENT": "gitlab-registry.cern.ch",
        "DUCC_gitlab_USER": "ducc-user",
        "DUCC_gitlab_PASS": "ducc-pass",
        "DUCC_hub_IDENT": "registry.hub.docker.com",
        "DUCC_hub_USER": "hub-user",
        "DUCC_hub_PASS": "hub-pass",
    }
    store = CredentialStore.from_environment(env)
    gitlab = store.lookup("gitlab-registry.cern.ch", "group/image")
    hub = store.lookup("registry-1.docker.io", "library/x")
    assert gitlab == Credential("ducc-user", "ducc-pass", "DUCC_gitlab_USER/_PASS")
    assert hub is not None
    assert hub.username == "hub-user"


def test_incomplete_ducc_variables_are_an_error_without_the_secret(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "DUCC_AUTH_REGISTRIES": "gitlab",
        "DUCC_gitlab_IDENT": "gitlab-registry.cern.ch",
        "DUCC_gitlab_PASS": "s3cret-value",
    }
    with pytest.raises(CredentialsInvalid, match="DUCC_gitlab_USER") as info:
        CredentialStore.from_environment(env)
    assert "s3cret-value" not in str(info.value)


def test_password_never_shows_in_a_repr() -> None:
    credential = Credential("alice", "hunter2", "somewhere")
    assert "hunter2" not in repr(credential)
    assert "hunter2" not in repr(CredentialStore.from_environment({"HOME": "/nonexistent"}))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"auths": []}', "'auths' must be an object"),
        ('{"auths": {"quay.io": {"auth": "!!!"}}}', "not base64"),
        (
            '{"auths": {"quay.io": {"auth": "' + base64.b64encode(b"nocolon").decode() + '"}}}',
            "not 'user:password'",
        ),
    ],
)
def test_broken_auth_files_are_reported(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "auth.json"
    path.write_text(content)
    with pytest.raises(CredentialsInvalid, match=message):
        CredentialStore.from_environment({"HOME": str(tmp_path), "REGISTRY_AUTH_FILE": str(path)})


def test_entries_without_auth_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / ".docker/config.json"
    path.parent.mkdir()
    path.write_text('{"auths": {"quay.io": {}}}')
    assert CredentialStore.from_environment({"HOME": str(tmp_path)}).lookup("quay.io") is None
