"""Registry credentials never reach any output: not a log line at debug level, not an error
message, not `--json`, not the metrics textfile, not the state `ducc status` shows.

One unique password (with its base64 and the base64 of `user:password`, the forms an
`Authorization` header and an auth.json carry) and the bearer token issued for it are placed
in every source ducc reads. ducc then succeeds and fails against a front on 127.0.0.1 that
demands Basic auth or a Bearer token (`tests.support.auth_registry`) before the real local
registry, and every byte it prints or writes is searched for them.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import requests

from tests.support.auth_registry import AuthRegistry
from tests.support.ducc import Run, ducc, unique, write_recipe
from tests.support.images import Image, file, make_image, make_layer
from tests.support.registry import LocalRegistry, free_port
from tests.support.zygote import Zygote

pytestmark = pytest.mark.integration

USER = "ducc-reader"
SECRET = f"Pw-{uuid.uuid4().hex}"
TOKEN = f"Tk-{uuid.uuid4().hex}"
LOUD = ["-vv", "--debug", "--log-format", "json"]  # debug logs and tracebacks: all there is
SOURCES = [
    "ducc_env",
    "registry_auth_file",
    "xdg_runtime_dir",
    "containers_config",
    "docker",
    "docker_helper",
]
HELPER = """#!/bin/sh
server=$(cat)
if [ "$server" != "{host}" ]; then echo "credentials not found in native keychain"; exit 1; fi
printf '{{"ServerURL": "%s", "Username": "{user}", "Secret": "{password}"}}' "$server"
"""


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


NEEDLES = {
    "password": SECRET,
    "base64(password)": _b64(SECRET),
    "base64(user:password)": _b64(f"{USER}:{SECRET}"),
    "token": TOKEN,
}


@dataclass
class Scanner:
    """Runs ducc and searches its outputs for the needles; counts them, for the figures.

    Commands run in processes forked from a zygote that imported ducc once (a few seconds
    saved per command); `plain=True` runs `python -m ducc` instead.
    """

    zygote: Zygote
    outputs: int = 0
    runs: int = 0
    found: list[str] = field(default_factory=list)

    def scan(self, what: str, text: str | bytes) -> None:
        data = text if isinstance(text, bytes) else text.encode()
        self.outputs += 1
        new = [f"{name} in {what}" for name, needle in NEEDLES.items() if needle.encode() in data]
        self.found += new
        assert not new, new

    def run(self, what: str, run: Run) -> Run:
        self.runs += 1
        self.scan(f"{what} stdout", run.stdout)
        self.scan(f"{what} stderr", run.stderr)
        return run

    def ducc(
        self, *args: str | Path, env: dict[str, str] | None = None, plain: bool = False
    ) -> Run:
        """`ducc ARGS` with the environment plus `env`; its output is scanned."""
        if plain:
            done = ducc(*args, env=env, timeout=120)
        else:
            done = self.zygote.run(*args, env=env, timeout=120)[0]
        return self.run(" ".join(map(str, args[:6])), done)

    def tree(self, what: str, *roots: Path) -> None:
        """Every file under `roots` (published trees, state database, downloads)."""
        for root in roots:
            for path in sorted(root.rglob("*")) if root.exists() else []:
                if path.is_file() and not path.is_symlink():
                    self.scan(f"{what} {path.relative_to(root)}", path.read_bytes())


@pytest.fixture(scope="module")
def scanner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scanner]:
    with Zygote(tmp_path_factory.mktemp("zygote")) as zygote:
        found = Scanner(zygote)
        yield found
    report = os.environ.get("DUCC_SECRECY_REPORT")
    if report:  # bench/RESULTS.md quotes these figures
        figures = {"runs": found.runs, "outputs": found.outputs, "found": len(found.found)}
        Path(report).write_text(json.dumps(figures) + "\n")


@dataclass(frozen=True)
class Pushed:
    repository: str
    tag: str
    image: Image


@pytest.fixture(scope="module")
def pushed(registry: LocalRegistry) -> Pushed:
    image = make_image([make_layer([file("etc/private", "only for the entitled")])], cmd=None)
    name = unique("private")
    registry.pusher().image(name, "1", image)
    registry.pusher().image(name, "2", image)
    return Pushed(name, "1", image)


@pytest.fixture
def front(registry: LocalRegistry) -> Iterator[AuthRegistry]:
    with AuthRegistry(
        registry.url, mode="bearer", user=USER, password=SECRET, token=TOKEN
    ) as server:
        yield server


def _auth_json(host: str, password: str = SECRET) -> str:
    return json.dumps({"auths": {host: {"auth": _b64(f"{USER}:{password}")}}})


def credentials_env(tmp: Path, host: str, source: str, password: str = SECRET) -> dict[str, str]:
    """HOME in `tmp` and the credential for `host` in `source` only ("all": in every one)."""
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": str(home),
        "REGISTRY_AUTH_FILE": "",
        "XDG_RUNTIME_DIR": "",
        "XDG_CONFIG_HOME": "",
        "DOCKER_CONFIG": "",
        "DUCC_AUTH_REGISTRIES": "",
    }
    every = source == "all"
    if every or source == "ducc_env":
        env |= {
            "DUCC_AUTH_REGISTRIES": "front",
            "DUCC_front_IDENT": host,
            "DUCC_front_USER": USER,
            "DUCC_front_PASS": password,
        }
    files = {
        "registry_auth_file": tmp / "auth.json",
        "xdg_runtime_dir": tmp / "run" / "containers" / "auth.json",
        "containers_config": home / ".config" / "containers" / "auth.json",
        "docker": home / ".docker" / "config.json",
    }
    for name, path in files.items():
        if every or source == name:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_auth_json(host, password))
    if source == "docker_helper":  # `credHelpers` names a program that answers for `host`
        helper = tmp / "bin" / "docker-credential-ducctest"
        helper.parent.mkdir(parents=True, exist_ok=True)
        helper.write_text(HELPER.format(host=host, user=USER, password=password))
        helper.chmod(0o755)
        files["docker"].parent.mkdir(parents=True, exist_ok=True)
        files["docker"].write_text(json.dumps({"credHelpers": {host: "ducctest"}}))
        env["PATH"] = f"{helper.parent}{os.pathsep}{os.environ['PATH']}"
    if every or source == "registry_auth_file":
        env["REGISTRY_AUTH_FILE"] = str(files["registry_auth_file"])
    if every or source == "xdg_runtime_dir":
        env["XDG_RUNTIME_DIR"] = str(tmp / "run")
    return env


def publish_args(tmp: Path) -> list[str]:
    return ["--publisher", "dir", "--root", str(tmp / "root"), "--state-dir", str(tmp / "state")]


def convert(
    scanner: Scanner, tmp: Path, images: list[str], env: dict[str, str], *, plain: bool = False
) -> Run:
    recipe = write_recipe(tmp / "recipe.yaml", "unpacked.test", images)
    run = scanner.ducc(*LOUD, "convert", recipe, "--json", *publish_args(tmp), env=env, plain=plain)
    scanner.ducc("status", "--json", "--state-dir", tmp / "state", env=env)
    scanner.tree("files", tmp / "root", tmp / "state")
    return run


def token_requests(front: AuthRegistry) -> list[str]:
    return [s.authorization for s in front.seen if s.path.startswith("/token")]


@pytest.mark.parametrize("source", SOURCES)
def test_each_source_is_used_and_never_shown(
    scanner: Scanner, front: AuthRegistry, pushed: Pushed, tmp_path: Path, source: str
) -> None:
    env = credentials_env(tmp_path, front.host, source)
    run = convert(scanner, tmp_path, [f"{front.url}/{pushed.repository}:1"], env, plain=True)
    assert run.code == 0, run.stderr
    assert run.outcomes() == {f"{front.url}/{pushed.repository}:1": "added"}
    assert front.basic() in token_requests(front)  # the credential came from `source`
    assert any(s.authorization == f"Bearer {TOKEN}" for s in front.seen)


def test_basic_auth_success_and_expand_and_download_manifest(
    scanner: Scanner, registry: LocalRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    with AuthRegistry(registry.url, mode="basic", user=USER, password=SECRET) as front:
        env = credentials_env(tmp_path, front.host, "all")
        ref = f"{front.url}/{pushed.repository}"
        run = convert(scanner, tmp_path, [f"{ref}:1"], env)
        assert run.code == 0, run.stderr
        expand = scanner.ducc(*LOUD, "expand", "-i", f"{ref}:*", "--json", env=env)
        assert expand.code == 0, expand.stderr
        assert f"{ref}:2" in expand.stdout
        manifest = scanner.ducc(*LOUD, "download-manifest", f"{ref}:1", env=env)
        assert manifest.code == 0, manifest.stderr
        assert pushed.image.digest in manifest.stdout
        assert front.basic() in {s.authorization for s in front.seen}


def failures(scanner: Scanner, tmp: Path, env: dict[str, str], ref: str) -> list[Run]:
    """convert, expand and download-manifest of `ref` (`registry/repository`); all fail."""
    runs = [
        convert(scanner, tmp, [f"{ref}:1"], env),
        scanner.ducc(*LOUD, "expand", "-i", f"{ref}:*", "--json", env=env),
        scanner.ducc(*LOUD, "download-manifest", f"{ref}:1", env=env),
    ]
    for run in runs:
        assert run.code == 1, run.stdout + run.stderr
    return runs


def test_wrong_password_bearer(
    scanner: Scanner, front: AuthRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    env = credentials_env(tmp_path, front.host, "all", password=SECRET + "-wrong")
    front.password = SECRET + "-wrong-too"  # neither the right one nor the one ducc sends
    runs = failures(scanner, tmp_path, env, f"{front.url}/{pushed.repository}")
    assert "401" in runs[2].stderr


def test_wrong_password_basic(
    scanner: Scanner, registry: LocalRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    with AuthRegistry(registry.url, mode="basic", user=USER, password=SECRET) as front:
        env = credentials_env(tmp_path, front.host, "ducc_env", password=SECRET + "-wrong")
        runs = failures(scanner, tmp_path, env, f"{front.url}/{pushed.repository}")
        assert "authentication required" in runs[2].stderr
        assert any(s.authorization.startswith("Basic ") for s in front.seen)


@pytest.mark.parametrize("fault", ["token_404", "token_not_json", "token_without_token"])
def test_token_service_failure(
    scanner: Scanner, front: AuthRegistry, pushed: Pushed, tmp_path: Path, fault: str
) -> None:
    if fault == "token_404":
        front.faults.token_status = 404
    elif fault == "token_not_json":
        front.faults.token_body = f"<html>{front.basic()} {SECRET}</html>".encode()
    else:
        front.faults.token_body = json.dumps({"tok": TOKEN, "echo": SECRET}).encode()
    env = credentials_env(tmp_path, front.host, "all")
    runs = failures(scanner, tmp_path, env, f"{front.url}/{pushed.repository}")
    assert "token" in runs[2].stderr


@pytest.mark.parametrize("echo", ["header", "bare"])
def test_denied_with_the_credential_echoed(
    scanner: Scanner,
    front: AuthRegistry,
    pushed: Pushed,
    tmp_path: Path,
    echo: Literal["header", "bare"],
) -> None:
    """A careless registry echoes what it received: `Bearer <token>`, or the token alone."""
    front.faults.deny = echo
    env = credentials_env(tmp_path, front.host, "all")
    runs = failures(scanner, tmp_path, env, f"{front.url}/{pushed.repository}")
    assert "DENIED" in runs[2].stderr
    assert ("Bearer ***" if echo == "header" else "no pull access for ***") in runs[2].stderr


def test_redirected_blobs_get_no_credentials(
    scanner: Scanner, registry: LocalRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    with (
        AuthRegistry(registry.url, mode="none") as cdn,
        AuthRegistry(registry.url, mode="basic", user=USER, password=SECRET) as front,
    ):
        front.faults.redirect_blobs_to = cdn.url
        env = credentials_env(tmp_path, front.host, "all")
        run = convert(scanner, tmp_path, [f"{front.url}/{pushed.repository}:1"], env)
        assert run.code == 0, run.stderr
        blobs = [s for s in cdn.seen if "/blobs/" in s.path]
        assert len(blobs) >= 2  # config and layer came from the other origin
        assert all(s.authorization == "" for s in cdn.seen)


def test_anonymous_registry_gets_no_credentials(
    scanner: Scanner, registry: LocalRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    with AuthRegistry(registry.url, mode="none") as front:
        env = credentials_env(tmp_path, front.host, "all")
        run = convert(scanner, tmp_path, [f"{front.url}/{pushed.repository}:1"], env)
        assert run.code == 0, run.stderr
        assert front.seen
        assert all(s.authorization == "" for s in front.seen)
    env = credentials_env(tmp_path / "direct", registry.host, "all")
    run = convert(scanner, tmp_path / "direct", [f"{registry.url}/{pushed.repository}:1"], env)
    assert run.code == 0, run.stderr


def test_credentials_in_references_are_refused_unshown(
    scanner: Scanner, front: AuthRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    env = credentials_env(tmp_path, front.host, "all")
    refs = [
        f"http://{USER}:{SECRET}@{front.host}/{pushed.repository}:1",
        f"{USER}:{SECRET}@{front.host}/{pushed.repository}:1",
        f"http://{USER}:{SECRET}/x@{front.host}/{pushed.repository}:1",
    ]
    run = convert(scanner, tmp_path, refs, env)
    assert run.code == 1  # each entry fails alone, as a failed wish naming its line
    for line in range(4, 4 + len(refs)):
        assert f"recipe.yaml:{line}: input[{line - 4}]: image reference" in run.stdout
    assert {r["outcome"] for r in run.json()["images"]} == {"failed"}
    for ref in refs:
        args = ["convert-single-image", ref, "unpacked.test", *publish_args(tmp_path)]
        single = scanner.ducc(*LOUD, *args, env=env, plain=True)
        manifest = scanner.ducc(*LOUD, "download-manifest", ref, env=env)
        for done in (single, manifest):
            assert done.code == 2
            assert "carries credentials" in done.stderr
    assert front.seen == []


MALFORMED = {
    "truncated_json": _auth_json("h.test")[:-3],
    "auths_not_object": json.dumps({"auths": [SECRET, _b64(f"{USER}:{SECRET}")]}),
    "auth_not_base64": json.dumps({"auths": {"h.test": {"auth": f"{USER}:{SECRET}"}}}),
    "auth_without_colon": json.dumps({"auths": {"h.test": {"auth": _b64(SECRET)}}}),
    "not_an_object": json.dumps([_b64(f"{USER}:{SECRET}")]),
}


@pytest.mark.parametrize("where", ["registry_auth_file", "docker"])
@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_auth_file_is_named_not_echoed(
    scanner: Scanner, front: AuthRegistry, tmp_path: Path, where: str, content: str
) -> None:
    env = credentials_env(tmp_path, front.host, where)
    path = Path(env["REGISTRY_AUTH_FILE"]) if where != "docker" else None
    path = path or Path(env["HOME"]) / ".docker" / "config.json"
    path.write_text(content)
    run = scanner.ducc(*LOUD, "download-manifest", f"{front.url}/x/y:1", env=env)
    assert run.code == 2, run.stderr
    assert f"error: {path}:" in run.stderr
    assert front.seen == []


def test_incomplete_ducc_variables_are_named_not_echoed(
    scanner: Scanner, front: AuthRegistry, tmp_path: Path
) -> None:
    env = credentials_env(tmp_path, front.host, "ducc_env") | {"DUCC_front_IDENT": ""}
    run = scanner.ducc(*LOUD, "download-manifest", f"{front.url}/x/y:1", env=env)
    assert run.code == 2
    assert "DUCC_front_IDENT" in run.stderr


def test_loop_metrics_and_state_hold_no_secret(
    scanner: Scanner, front: AuthRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    env = credentials_env(tmp_path, front.host, "all") | {"DUCC_WEBHOOK_SECRET": SECRET}
    good, bad = f"{front.url}/{pushed.repository}:1", f"{front.url}/{pushed.repository}-no:1"
    recipe = write_recipe(tmp_path / "recipe.yaml", "unpacked.test", [good, bad])
    metrics = tmp_path / "metrics.prom"
    argv = [sys.executable, "-m", "ducc", *LOUD, "loop", str(recipe), *publish_args(tmp_path)]
    webhook = f"127.0.0.1:{free_port()}"
    argv += ["--interval", "1s", "--metrics-textfile", str(metrics), "--webhook-listen", webhook]
    log = tmp_path / "loop.log"
    with log.open("w") as stderr:
        loop = subprocess.Popen(argv, stdout=stderr, stderr=stderr, env={**os.environ, **env})
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                metrics.exists() and "ducc_" in metrics.read_text()
            ):
                time.sleep(0.2)
            push = {"events": [{"action": "push", "target": {"repository": pushed.repository}}]}
            for secret in (SECRET + "-not", SECRET):  # refused, then accepted
                answer = requests.post(
                    f"http://{webhook}/",
                    json=push,
                    headers={"Authorization": f"Bearer {secret}"},
                    timeout=10,
                )
                scanner.scan("webhook answer", answer.content)
                assert answer.status_code == (202 if secret == SECRET else 401)
            time.sleep(1.5)  # one more cycle: the failing image is polled again
        finally:
            loop.send_signal(signal.SIGTERM)
            code = loop.wait(timeout=30)
    assert code == 0
    assert metrics.exists()
    scanner.scan("loop log", log.read_bytes())
    scanner.scan("metrics textfile", metrics.read_bytes())
    status = scanner.ducc("status", "--json", "--state-dir", tmp_path / "state", plain=True)
    images = {item["image"]: item for item in json.loads(status.stdout)["images"]}
    assert images[good]["last_success"], images
    assert images[bad]["last_error"], images
    scanner.tree("files", tmp_path / "root", tmp_path / "state")
    assert front.basic() in token_requests(front)


def test_nothing_was_found(scanner: Scanner) -> None:
    """Last in the module: the scanner saw every output above and found nothing."""
    assert scanner.found == []
