"""`ducc convert` through a fault-injecting proxy in front of the real registry.

For each fault ducc either converts the image correctly after bounded retries, or fails that
image with an error naming the fault, publishes nothing of it, keeps no corrupt blob, and
converts it on the next run without the fault. Requests reaching the registry are counted
and bounded per fault.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ducc.pipeline import blobcache
from ducc.repository.verify import verify
from tests.support.ducc import Run, ducc, unique, write_recipe
from tests.support.faultproxy import Fault, FaultProxy, Rule
from tests.support.images import Image, directory, file, make_image, make_layer
from tests.support.registry import LocalRegistry

pytestmark = pytest.mark.integration

RETRIES = 3
READ_TIMEOUT = 1.0
# Short waits so that every fault costs seconds, not minutes.
FAST = {
    "DUCC_REGISTRY_CONNECT_TIMEOUT": "2",
    "DUCC_REGISTRY_READ_TIMEOUT": str(READ_TIMEOUT),
    "DUCC_REGISTRY_RETRIES": str(RETRIES),
    "DUCC_REGISTRY_BACKOFF": "0.05",
    "DUCC_REGISTRY_BACKOFF_CAP": "0.2",
    "DUCC_REGISTRY_MAX_WAIT": "5",
}
DATA_SIZE = 256 * 1024
KEEP = 100_000  # body bytes sent before a reset, truncation or stall
DATA = os.urandom(DATA_SIZE)  # incompressible: the layer blob is about as large


def image_with(text: str) -> Image:
    data = make_layer([directory("data"), file("data/blob.bin", DATA)])
    app = make_layer([directory("etc"), file("etc/app", text)])
    return make_image([data, app], cmd=["/bin/cat", "/etc/app"])


IMAGE = image_with("first")
OTHER = image_with("second")  # the same data layer, another app layer and config
DATA_BLOB = IMAGE.layers[0].digest


@dataclass
class Pushed:
    """An image behind the proxy: its reference through the proxy, where it is published."""

    name: str
    ref: str
    registry: LocalRegistry
    proxy: FaultProxy
    root: Path
    state: Path
    recipe: Path

    def convert(self) -> Run:
        args: list[str | Path] = ["--publisher", "dir", "--root", self.root]
        args += ["--state-dir", self.state]
        return ducc("convert", self.recipe, "--json", *args, env=FAST, timeout=60)

    def public(self) -> Path:
        return self.root / self.ref.split("://", 1)[1]

    def repush(self, image: Image) -> None:
        """Point the tag at `image`, directly on the registry (not through the proxy)."""
        self.registry.pusher().image(self.name, "1", image)


@pytest.fixture
def pushed(registry: LocalRegistry, proxy: FaultProxy, tmp_path: Path) -> Pushed:
    name = unique("faults/app")
    registry.pusher().image(name, "1", IMAGE)
    registry.pusher().image(name, "other", OTHER)
    ref = f"{proxy.url}/{name}:1"
    recipe = write_recipe(tmp_path / "r.yaml", "local.test", [ref])
    return Pushed(name, ref, registry, proxy, tmp_path / "repo", tmp_path / "state", recipe)


# --- the faults ---------------------------------------------------------------------------

BLOB = rf"/blobs/{DATA_BLOB}$"
# /v2/ probe, manifest HEAD (poll) and GET, config, two layers.
CLEAN_RUN = 6
MANIFEST = r"/manifests/1$"
ANY_MANIFEST = r"/manifests/"
PROBE = r"^/v2/$"


@dataclass(frozen=True)
class Case:
    """One fault: the rule, which requests it targets, and what ducc must make of it."""

    name: str
    what: str  # what is injected, in words
    rule: Callable[[Pushed], Rule]
    method: str  # the targeted requests: method and path regex
    path: str
    requests: int  # the targeted requests the fault costs in all, exactly (clean run: 1)
    error: str | None = None  # None: converts; else a word the failure must name


def _rule(fault: Fault, method: str, path: str, **kw: object) -> Callable[[Pushed], Rule]:
    return lambda _: Rule(fault, method, path, **kw)  # type: ignore[arg-type]


def _swap_rule(pushed: Pushed) -> Rule:
    """Just before the manifest GET, the tag is re-pushed to OTHER (after the poll's HEAD)."""
    return Rule(Fault.BEFORE, "GET", ANY_MANIFEST, before=lambda: pushed.repush(OTHER))


def _replace_rule(_: Pushed) -> Rule:
    """The manifest GET answers OTHER's manifest, with OTHER's digest header."""
    return Rule(
        Fault.REPLACE, "GET", ANY_MANIFEST, body=OTHER.manifest, media_type=OTHER.manifest_type
    )


STALL = 4 * READ_TIMEOUT
CASES = [
    Case(
        "reset-mid-blob",
        "layer GET: headers and 100,000 bytes, then TCP RST (once)",
        _rule(Fault.RESET, "GET", BLOB, keep=KEEP),
        "GET",
        BLOB,
        2,
    ),
    Case(
        "truncated-body",
        "layer GET: full Content-Length, 100,000 bytes, then FIN (once)",
        _rule(Fault.TRUNCATE, "GET", BLOB, keep=KEEP),
        "GET",
        BLOB,
        2,
    ),
    Case(
        "stalled-blob",
        f"layer GET: headers and 100,000 bytes, then silence for {STALL:g} s (once)",
        _rule(Fault.STALL, "GET", BLOB, keep=KEEP, stall=STALL),
        "GET",
        BLOB,
        2,
    ),
    Case(
        "500-burst-blob",
        "layer GET: 500 twice",
        _rule(Fault.STATUS, "GET", BLOB, status=500, times=2),
        "GET",
        BLOB,
        3,
    ),
    Case(
        "502-burst-manifest",
        "manifest GET: 502 twice",
        _rule(Fault.STATUS, "GET", ANY_MANIFEST, status=502, times=2),
        "GET",
        ANY_MANIFEST,
        3,
    ),
    Case(
        "503-burst-head",
        "manifest HEAD (poll): 503 twice",
        _rule(Fault.STATUS, "HEAD", MANIFEST, status=503, times=2),
        "HEAD",
        MANIFEST,
        3,
    ),
    Case(
        "503-burst-probe",
        "GET /v2/ (the API probe): 503 twice",
        _rule(Fault.STATUS, "GET", PROBE, status=503, times=2),
        "GET",
        PROBE,
        3,
    ),
    Case(
        "reset-every-64k",
        "layer GET: headers and 65,536 bytes, then TCP RST (always)",
        _rule(Fault.RESET, "GET", BLOB, keep=1 << 16, times=None),
        "GET",
        BLOB,
        -(-len(IMAGE.layers[0].blob) // (1 << 16)),  # each request brings 64 KiB more
    ),
    Case(
        "429-retry-after",
        "manifest GET: 429 with Retry-After: 1 (once)",
        _rule(Fault.STATUS, "GET", ANY_MANIFEST, status=429, retry_after=1),
        "GET",
        ANY_MANIFEST,
        2,
    ),
    Case(
        "429-beyond-max-wait",
        "manifest GET: 429 with Retry-After: 3600 (always; max wait 5 s)",
        _rule(Fault.STATUS, "GET", ANY_MANIFEST, status=429, retry_after=3600, times=None),
        "GET",
        ANY_MANIFEST,
        1,  # a wait longer than DUCC_REGISTRY_MAX_WAIT is not sat out: fail at once
        error="http 429",
    ),
    Case(
        "500-permanent-blob",
        "layer GET: 500 always",
        _rule(Fault.STATUS, "GET", BLOB, status=500, times=None),
        "GET",
        BLOB,
        RETRIES,
        error="http 500",
    ),
    Case(
        "stalled-permanent",
        f"layer GET: headers, then silence for {STALL:g} s (always)",
        _rule(Fault.STALL, "GET", BLOB, stall=STALL, times=None),
        "GET",
        BLOB,
        1 + 3,  # the first request and MAX_RESUMES_WITHOUT_PROGRESS resumes
        error="timeout",
    ),
    Case(
        "stalled-manifest",
        f"manifest GET: headers, then silence for {STALL:g} s (once)",
        _rule(Fault.STALL, "GET", ANY_MANIFEST, stall=STALL),
        "GET",
        ANY_MANIFEST,
        2,
    ),
    Case(
        "reset-permanent-blob",
        "layer GET: headers, then TCP RST (always)",
        _rule(Fault.RESET, "GET", BLOB, times=None),
        "GET",
        BLOB,
        1 + 3,  # the first request and MAX_RESUMES_WITHOUT_PROGRESS resumes
        error="reset",
    ),
    Case(
        "dropped-permanent-blob",
        "layer GET: TCP RST before any header (always)",
        _rule(Fault.DROP, "GET", BLOB, times=None),
        "GET",
        BLOB,
        RETRIES,
        error="reset",
    ),
    Case(
        "flipped-byte",
        "layer GET: one byte inverted, same length (once)",
        _rule(Fault.FLIP, "GET", BLOB),
        "GET",
        BLOB,
        1,
        error="digest mismatch",
    ),
    Case(
        "flipped-manifest",
        "manifest GET: one byte inverted, same length (once)",
        _rule(Fault.FLIP, "GET", ANY_MANIFEST),
        "GET",
        ANY_MANIFEST,
        1,
        error="digest mismatch",
    ),
    Case(
        "content-length-long",
        "layer GET: Content-Length 10 more than the blob, then close (once)",
        _rule(Fault.LONG_LENGTH, "GET", BLOB, keep=10),
        "GET",
        BLOB,
        1,
        error="size mismatch",
    ),
    Case(
        "content-length-short",
        "layer GET: Content-Length 10 less than the blob (once)",
        _rule(Fault.SHORT_LENGTH, "GET", BLOB, keep=10),
        "GET",
        BLOB,
        1,
        error="size mismatch",
    ),
    Case(
        "manifest-repushed",
        "tag re-pushed to another image between the poll's HEAD and the GET",
        _swap_rule,
        "GET",
        ANY_MANIFEST,
        1,
    ),
    Case(
        "manifest-replaced",
        "manifest GET answers another image's manifest (HEAD said the first)",
        _replace_rule,
        "GET",
        ANY_MANIFEST,
        1,
        error="digest mismatch",
    ),
]


# --- checks -------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def assert_no_corrupt_blob(state: Path) -> None:
    """Every file in the blob cache (but its lock) is complete and matches the digest it is
    named by."""
    downloads = state / "downloads"
    for path in downloads.rglob("*") if downloads.exists() else []:
        if path.is_file() and path != downloads / blobcache.LOCK:
            assert not path.name.endswith(".part"), f"partial download left: {path}"
            assert sha256_file(path) == f"{path.parent.name}:{path.name}", path


def assert_converted(pushed: Pushed, run: Run, image: Image) -> None:
    assert run.code == 0, run.stdout + run.stderr
    (result,) = run.json()["images"]
    assert result["outcome"] == "added", result
    flat = pushed.public().resolve()
    assert (flat / "data/blob.bin").read_bytes() == DATA
    assert (flat / "etc/app").read_text() == ("first" if image is IMAGE else "second")
    stored = pushed.root / ".metadata" / pushed.ref.split("://", 1)[1] / "manifest.json"
    assert stored.read_bytes() == image.manifest
    assert result["digest"] == image.digest  # the report names what was published
    checked = verify(pushed.root)  # what `ducc verify` runs, without another interpreter
    assert checked.ok, checked.problems
    assert checked.counts.get("image") == 1, checked.counts
    assert_no_corrupt_blob(pushed.state)


def assert_nothing_published(pushed: Pushed) -> None:
    assert not os.path.lexists(pushed.public())
    flat = pushed.root / ".flat" / IMAGE.config_digest[7:9] / IMAGE.config_digest[7:]
    assert not flat.exists()
    layer = pushed.root / ".layers" / DATA_BLOB[7:9] / DATA_BLOB[7:]
    assert not layer.exists()
    assert not (pushed.root / ".metadata" / pushed.ref.split("://", 1)[1]).exists()
    # Not even staged: no copy of the layer's file anywhere in the repository.
    assert list(pushed.root.rglob("blob.bin")) == []
    assert_no_corrupt_blob(pushed.state)


def assert_bounded(pushed: Pushed, case: Case) -> int:
    seen = pushed.proxy.count(method=case.method, path=case.path)
    assert seen == case.requests, pushed.proxy.seen
    # Nothing else is asked again: a clean run makes CLEAN_RUN requests in all.
    extra = len(pushed.proxy.seen) - seen
    if case.error is None:
        assert extra == CLEAN_RUN - 1, pushed.proxy.seen
    else:
        assert extra <= CLEAN_RUN - 1, pushed.proxy.seen
    return seen


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_fault_converts_after_retries_or_fails_that_image_cleanly(
    pushed: Pushed, case: Case
) -> None:
    pushed.proxy.add(case.rule(pushed))
    run = pushed.convert()
    assert pushed.proxy.faults_fired() >= 1, "the fault never fired"
    seen = assert_bounded(pushed, case)
    report = {"case": case.name, "what": case.what, "requests": seen, "bound": case.requests}
    report["total"] = len(pushed.proxy.seen)
    if case.error is None:
        assert_converted(pushed, run, IMAGE)
        report["outcome"] = "converted"
    else:
        assert run.code == 1, run.stdout + run.stderr
        (result,) = run.json()["images"]
        assert result["outcome"] == "failed"
        assert case.error in result["error"].lower(), result["error"]
        assert_nothing_published(pushed)
        report["outcome"] = f"failed: {result['error']}"
        pushed.proxy.clear()
        assert_converted(pushed, pushed.convert(), IMAGE)
    print("FAULT-CASE " + json.dumps(report))  # bench/faults.py collects these lines


def test_a_reset_blob_download_resumes_with_range(pushed: Pushed) -> None:
    pushed.proxy.add(Rule(Fault.RESET, "GET", BLOB, keep=KEEP))
    assert_converted(pushed, pushed.convert(), IMAGE)
    verified = ducc("verify", pushed.root)
    assert verified.code == 0, verified.stdout + verified.stderr
    first, again = [s for s in pushed.proxy.seen if s.kind == "blob" and DATA_BLOB in s.path]
    assert (first.range, first.fault, again.fault) == (None, Fault.RESET, None)
    assert again.range is not None
    offset = int(again.range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < offset <= KEEP
    assert again.status == 206


def test_429_retry_after_is_honoured(pushed: Pushed) -> None:
    pushed.proxy.add(Rule(Fault.STATUS, "GET", ANY_MANIFEST, status=429, retry_after=1))
    assert_converted(pushed, pushed.convert(), IMAGE)
    limited, again = [s for s in pushed.proxy.seen if s.kind == "manifest" and s.method == "GET"]
    assert (limited.status, again.status) == (429, 200)
    assert again.at - limited.at >= 1.0


def test_a_tag_moved_between_head_and_get_publishes_what_was_reported(pushed: Pushed) -> None:
    """The poll's HEAD said IMAGE, then the tag moved to OTHER: IMAGE is published and
    reported (fetched by digest), and the next run updates to OTHER."""
    pushed.proxy.add(_swap_rule(pushed))
    assert_converted(pushed, pushed.convert(), IMAGE)
    (get,) = [s for s in pushed.proxy.seen if s.kind == "manifest" and s.method == "GET"]
    assert get.path.endswith(f"/manifests/{IMAGE.digest}")
    again = pushed.convert()
    assert again.code == 0, again.stdout + again.stderr
    (result,) = again.json()["images"]
    assert (result["outcome"], result["digest"]) == ("updated", OTHER.digest)
    assert (pushed.public() / "etc/app").read_text() == "second"
