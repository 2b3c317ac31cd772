"""Docker credential helpers named by `credHelpers` and `credsStore`, run as real programs."""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from pathlib import Path

import pytest

from ducc import log
from ducc.errors import CredentialsInvalid
from ducc.registry.credentials import CredentialStore
from ducc.registry.helpers import CredentialHelper, HelperAnswers

HELPER = """#!{python}
import json, sys
from pathlib import Path
here = Path(__file__).parent
server = sys.stdin.read()
with open(here / "{name}.calls", "a") as log:
    log.write(sys.argv[1] + " " + server + "\\n")
answers = json.loads((here / "{name}.json").read_text())
if server not in answers:
    print("credentials not found in native keychain")
    sys.exit(1)
answer = answers[server]
if isinstance(answer, str):
    sys.stdout.write(answer)
else:
    json.dump(answer, sys.stdout)
"""


class Helpers:
    """Programs `docker-credential-<name>` in a directory put first on PATH."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir

    def add(self, name: str, answers: dict[str, object]) -> None:
        program = self.bin / f"docker-credential-{name}"
        program.write_text(HELPER.format(python=sys.executable, name=name))
        program.chmod(0o755)
        (self.bin / f"{name}.json").write_text(json.dumps(answers))

    def calls(self, name: str) -> list[str]:
        log = self.bin / f"{name}.calls"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helpers:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return Helpers(bin_dir)


def docker_config(home: Path, doc: dict[str, object]) -> CredentialStore:
    path = home / ".docker/config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return CredentialStore.from_environment({"HOME": str(home)})


def user_secret(user: str, secret: str) -> dict[str, str]:
    return {"ServerURL": "", "Username": user, "Secret": secret}


def test_cred_helpers_name_a_helper_per_registry(helpers: Helpers, tmp_path: Path) -> None:
    helpers.add("ecr", {"quay.io": user_secret("robot", "s3cret")})
    store = docker_config(tmp_path, {"credHelpers": {"quay.io": "ecr"}})
    found = store.lookup("quay.io", "team/app")
    assert found is not None
    assert (found.username, found.password) == ("robot", "s3cret")
    assert "docker-credential-ecr" in found.source
    assert store.lookup("ghcr.io", "team/app") is None  # not its registry: never asked
    assert helpers.calls("ecr") == ["get quay.io"]


def test_the_registry_helper_wins_over_auths_and_auths_over_the_store(
    helpers: Helpers, tmp_path: Path
) -> None:
    helpers.add("special", {"quay.io": user_secret("from-helper", "a")})
    helpers.add("desktop", {"ghcr.io": user_secret("from-store", "b")})
    stored = base64.b64encode(b"from-auths:c").decode()
    store = docker_config(
        tmp_path,
        {
            "credHelpers": {"quay.io": "special"},
            "auths": {"quay.io": {"auth": stored}, "gitlab.test": {"auth": stored}},
            "credsStore": "desktop",
        },
    )
    users = {r: getattr(store.lookup(r, "x/y"), "username", None) for r in ("quay.io", "ghcr.io")}
    assert users == {"quay.io": "from-helper", "ghcr.io": "from-store"}
    gitlab = store.lookup("gitlab.test", "x/y")
    assert gitlab is not None
    assert gitlab.username == "from-auths"
    assert store.lookup("other.test", "x/y") is None  # the store has none: anonymous
    assert helpers.calls("desktop") == ["get ghcr.io", "get other.test"]


def test_docker_hub_is_asked_for_by_its_classic_address(helpers: Helpers, tmp_path: Path) -> None:
    helpers.add("desktop", {"https://index.docker.io/v1/": user_secret("hubuser", "pw")})
    store = docker_config(tmp_path, {"credsStore": "desktop"})
    for alias in ("registry.hub.docker.com", "registry-1.docker.io", "docker.io"):
        found = store.lookup(alias, "library/centos")
        assert found is not None
        assert found.username == "hubuser"
    assert helpers.calls("desktop") == ["get https://index.docker.io/v1/"]  # asked once


def test_an_answer_is_reused_for_a_while_then_asked_again(helpers: Helpers) -> None:
    helpers.add("ecr", {"quay.io": user_secret("robot", "s3cret")})
    now = [0.0]
    answers = HelperAnswers(keep=300.0, clock=lambda: now[0])
    helper = CredentialHelper("ecr", Path("config.json"))
    for moment in (0.0, 100.0, 299.0, 301.0):
        now[0] = moment
        assert answers.get(helper, "quay.io") is not None
    assert len(helpers.calls("ecr")) == 2


def test_a_helper_missing_from_path_is_a_clear_error(tmp_path: Path) -> None:
    store = docker_config(tmp_path, {"credsStore": "nosuch-helper-here"})
    with pytest.raises(CredentialsInvalid, match="docker-credential-nosuch-helper-here is not on"):
        store.lookup("quay.io", "team/app")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("not json s3cret", "the answer is not JSON"),
        (["s3cret"], "not a JSON object"),
        ({"Username": "robot", "Secret": 7}, "'Username' and 'Secret' must be strings"),
        ({"Username": "<token>", "Secret": "s3cret"}, "identity token"),
    ],
)
def test_a_bad_answer_is_refused_without_quoting_it(
    helpers: Helpers, tmp_path: Path, answer: object, message: str
) -> None:
    helpers.add("odd", {"quay.io": answer})
    store = docker_config(tmp_path, {"credHelpers": {"quay.io": "odd"}})
    with pytest.raises(CredentialsInvalid, match=message) as info:
        store.lookup("quay.io", "team/app")
    assert "s3cret" not in str(info.value)


def test_a_failing_helper_is_reported_with_its_message(helpers: Helpers, tmp_path: Path) -> None:
    program = helpers.bin / "docker-credential-broken"
    program.write_text("#!/bin/sh\necho 'keychain locked' >&2\nexit 3\n")
    program.chmod(0o755)
    store = docker_config(tmp_path, {"credHelpers": {"quay.io": "broken"}})
    with pytest.raises(CredentialsInvalid, match=r"get quay\.io: exit status 3: keychain locked"):
        store.lookup("quay.io", "team/app")


@pytest.mark.parametrize(
    "doc",
    [
        {"credHelpers": ["ecr"]},
        {"credHelpers": {"quay.io": "../../bin/sh"}},
        {"credHelpers": {"quay.io": ""}},
        {"credsStore": 5},
    ],
)
def test_malformed_helper_names_are_refused_when_read(tmp_path: Path, doc: object) -> None:
    path = tmp_path / ".docker/config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    with pytest.raises(CredentialsInvalid, match=re.escape(str(path))):
        CredentialStore.from_environment({"HOME": str(tmp_path)})


def test_lookups_share_one_credential_and_its_secret_is_hidden(
    helpers: Helpers, tmp_path: Path
) -> None:
    helpers.add("ecr", {"quay.io": user_secret("robot", "helper-secret-42")})
    store = docker_config(tmp_path, {"credHelpers": {"quay.io": "ecr"}})
    first, again = store.lookup("quay.io", "a/b"), store.lookup("quay.io", "c/d")
    assert first is not None
    assert again is first  # asked once, one Credential for every request
    assert log.redact("token helper-secret-42 sent") == "token *** sent"
