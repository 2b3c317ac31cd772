"""Load: 200 images sharing base layers converted with bounded memory and file descriptors,
and `ducc loop` polling fast for a long time without growing in memory, threads or FDs.

The soak lasts `DUCC_SOAK_SECONDS` (90 s by default); the 200 images go through the fake
`cvmfs_server` too when `DUCC_LOAD_CVMFS=1` (some 10 minutes: one process per ingest).
Figures are printed and, when `DUCC_LOAD_REPORT` names a file, appended to it as JSON lines
(`DUCC_LOAD_SAMPLES`: the soak's samples as CSV).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakes.fixture import FakeCvmfs
from tests.support.ducc import ducc, unique, write_recipe
from tests.support.fleet import Pushed, fleet_image, plan, push_all
from tests.support.images import Pusher
from tests.support.procstat import Sampler, Summary
from tests.support.registry import LocalRegistry, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIB = 1024 * 1024
# A conversion keeps at most --max-concurrent-downloads blobs in flight and streams layers;
# the interpreter with its imports is ~50 MiB. 250 MiB leaves room for the unpack workers
# while still catching anything that holds all 200 images (or their blobs) in memory.
PEAK_RSS = 250 * MIB
GNU_TIME = "/usr/bin/time"  # Debian package `time` (scripts/setup)
PEAK_FDS = 128  # pooled registry connections, a few open blobs and layers, the logs
PEAK_THREADS = 32  # download workers per registry plus the main thread
SOAK_SECONDS = float(os.environ.get("DUCC_SOAK_SECONDS", "90"))


@dataclass(frozen=True, slots=True)
class Sampled:
    code: int
    stdout: str
    stderr: str
    seconds: float
    summary: Summary
    maxrss: int  # the kernel's peak RSS of ducc (GNU time's %M), bytes

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_sampled(args: Sequence[str | os.PathLike[str]], workdir: Path, name: str) -> Sampled:
    """`ducc ARGS...` under the sampler (every 0.2 s); output goes through files.

    The kernel's peak comes from GNU time, which starts ducc from its own small process: a
    child forked straight from pytest inherits pytest's peak RSS in its own `ru_maxrss`."""
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    peak = workdir / f"{name}.maxrss"
    started = time.monotonic()
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", peak, sys.executable, "-m", "ducc", *map(str, args)],
            stdout=stdout,
            stderr=stderr,
        )
        with Sampler(proc.pid, interval=0.2) as sampler:
            proc.wait()
    seconds = time.monotonic() - started
    return Sampled(
        proc.returncode,
        out.read_text(),
        err.read_text(),
        seconds,
        sampler.summary(),
        int(peak.read_text().split()[-1]) * 1024,
    )


def record(kind: str, figures: dict[str, Any]) -> None:
    """Print the figures; append them to $DUCC_LOAD_REPORT when set."""
    line = json.dumps({"test": kind, **figures}, sort_keys=True)
    print(line)
    target = os.environ.get("DUCC_LOAD_REPORT")
    if target:
        with open(target, "a") as report:
            report.write(line + "\n")


def figures(summary: Summary) -> dict[str, Any]:
    return {
        "samples": summary.samples,
        "peak_rss_mib": round(summary.peak_rss / MIB, 1),
        "peak_hwm_mib": round(summary.peak_hwm / MIB, 1),
        "peak_threads": summary.peak_threads,
        "peak_fds": summary.peak_fds,
        "peak_processes": summary.peak_processes,
        "first_rss_mib": round(summary.first_rss / MIB, 1),
        "last_rss_mib": round(summary.last_rss / MIB, 1),
        "rss_slope_mib_per_min": round(summary.rss_slope_per_min / MIB, 3),
        "first_threads": summary.first_threads,
        "last_threads": summary.last_threads,
        "first_fds": summary.first_fds,
        "last_fds": summary.last_fds,
        "first_files_floor": summary.first_files_floor,
        "last_files_floor": summary.last_files_floor,
        "peak_sockets": summary.peak_sockets,
    }


def registry_requests(stderr: str) -> dict[str, int]:
    """Count the `registry_request` events of a `-vv --log-format json` run by method and
    what they asked for: `HEAD manifests`, `GET blobs`, `GET tags`, `GET /v2/`."""
    counts: dict[str, int] = {}
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "registry_request":
            parts = event["url"].split("?")[0].rstrip("/").split("/")
            kind = "/v2/" if parts[-1] == "v2" else parts[-2]  # /v2/<name>/<kind>/<reference>
            key = f"{event['method']} {kind}"
            counts[key] = counts.get(key, 0) + 1
    return counts


def fleet_recipe(
    path: Path, registry: LocalRegistry, images: Sequence[Pushed], cvmfs_repo: str = "load.test"
) -> Path:
    """Wildcards for the even repositories, one input per tag for the odd ones."""
    repositories = sorted({x.repository for x in images})
    inputs = [f"{registry.url}/{r}:t*" for r in repositories[::2]]
    listed = [x for x in images if x.repository in repositories[1::2]]
    inputs += [f"{registry.url}/{x.repository}:{x.tag}" for x in listed]
    return write_recipe(path, cvmfs_repo, inputs)


def layer_digests(pushed: Pushed) -> list[str]:
    return [layer.digest for layer in fleet_image(pushed.text).layers]


def stored(products: Path) -> set[str]:
    """The digests (hex) of the products below `.layers` or `.flat` (`<xx>/<hex>`)."""
    return {p.name for p in products.glob("*/*") if p.is_dir() and not p.name.startswith(".")}


@pytest.fixture(params=["dir", "cvmfs"])
def publisher(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path, list[str | Path]]:
    """(cvmfs_repo, repository root, ducc options) of the dir or fake cvmfs publisher."""
    if request.param == "dir":
        root = tmp_path / "repo"
        return "load.test", root, ["--publisher", "dir", "--root", root]
    if not os.environ.get("DUCC_LOAD_CVMFS"):
        pytest.skip("~10 min through the fake cvmfs_server; set DUCC_LOAD_CVMFS=1 to run it")
    if os.geteuid() != 0:
        pytest.skip("the fake cvmfs_server serves read-only mounts only as root")
    fake: FakeCvmfs = request.getfixturevalue("fake_cvmfs")
    return fake.repo, fake.root, ["--publisher", "cvmfs", "--cvmfs-prefix", fake.prefix]


def test_200_images_sharing_base_layers_convert_with_bounded_memory_and_fds(
    registry: LocalRegistry, tmp_path: Path, publisher: tuple[str, Path, list[str | Path]]
) -> None:
    cvmfs_repo, root, options = publisher
    images = plan(unique("load"), repositories=10, tags=20)
    push_all(registry.url, images)
    recipe = fleet_recipe(tmp_path / "r.yaml", registry, images, cvmfs_repo)
    options += ["--state-dir", tmp_path / "state", "--skip-podman"]
    argv: list[str | Path] = ["--log-format", "json", "-vv", "convert", recipe, "--json", *options]

    first = run_sampled(argv, tmp_path, "first")
    assert first.code == 0, first.stderr[-3000:]
    outcomes = [r["outcome"] for r in first.json()["images"]]
    assert outcomes == ["added"] * 200
    verified = ducc("verify", root)
    assert verified.code == 0, verified.stdout + verified.stderr
    # The two shared layers stored once, plus one top layer per image.
    wanted = {d.split(":")[1] for x in images for d in layer_digests(x)}
    assert len(wanted) == 2 + 200
    assert stored(root / ".layers") == wanted
    assert len(stored(root / ".flat")) == 200
    assert first.summary.peak_rss < PEAK_RSS
    assert first.maxrss < PEAK_RSS
    assert first.summary.peak_fds < PEAK_FDS
    assert first.summary.peak_threads < PEAK_THREADS
    calls = registry_requests(first.stderr)
    # Every blob fetched once: 200 configs, 200 top layers and the two shared layers.
    assert calls["GET blobs"] == 200 + 200 + 2
    assert calls["GET manifests"] == 200

    second = run_sampled(argv, tmp_path, "second")
    assert second.code == 0, second.stderr[-3000:]
    assert [r["outcome"] for r in second.json()["images"]] == ["unchanged"] * 200
    calls = registry_requests(second.stderr)
    # One HEAD per image, the tag lists of the 5 wildcards, the API probe; no blob, no GET
    # of a manifest.
    assert calls.pop("HEAD manifests") == 200
    assert calls.pop("GET tags") == 5
    assert set(calls) <= {"GET /v2/"}
    for name, run in (("first", first), ("second", second)):
        record(
            f"convert_200_{options[1]}_{name}",
            {
                "images": 200,
                "seconds": round(run.seconds, 1),
                "maxrss_mib": round(run.maxrss / MIB, 1),
                "requests": registry_requests(run.stderr),
                **figures(run.summary),
            },
        )


# --- soak --------------------------------------------------------------------------------


class Churn:
    """Every few seconds, in a thread: update a tag in place or roll a wildcard repository on
    (push a new tag, delete the oldest), so the loop keeps converting with a bounded fleet."""

    def __init__(self, registry: LocalRegistry, prefix: str, every: float = 3.0) -> None:
        self.pusher = Pusher(registry.url)
        self.prefix = prefix
        self.every = every
        self.rolling = f"{prefix}/rolling"
        self.window: list[tuple[str, str]] = []  # (tag, digest) live in `rolling`
        self.updated = f"{prefix}/r01"
        self.changes = 0
        self.last: tuple[str, str] | None = None  # (reference, text) of the latest change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def seed(self, size: int = 4) -> None:
        for _ in range(size):
            self.roll()

    def roll(self) -> None:
        tag = f"n{self.changes:05d}"
        text = f"rolling {tag}"
        digest = self.pusher.image(self.rolling, tag, fleet_image(text))
        self.window.append((tag, digest))
        self.last = (f"{self.rolling}:{tag}", text)
        self.changes += 1
        if len(self.window) > 4:
            self.pusher.delete_tag_target(self.rolling, self.window.pop(0)[1])

    def update(self) -> None:
        tag = f"t{self.changes % 10:03d}"
        text = f"update {self.changes}"
        self.pusher.image(self.updated, tag, fleet_image(text))
        self.last = (f"{self.updated}:{tag}", text)
        self.changes += 1

    def _run(self) -> None:
        chooser = random.Random(7)
        while not self._stop.wait(self.every):
            self.roll() if chooser.random() < 0.5 else self.update()

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def loop_process(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    pytest.fail(f"not reached within {timeout} s")


def metric(text: str, prefix: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


def test_loop_soak_polls_fast_without_growth(
    registry: LocalRegistry, tmp_path: Path, loop_process: list[subprocess.Popen[bytes]]
) -> None:
    prefix = unique("soak")
    images = plan(prefix, repositories=5, tags=10)
    push_all(registry.url, images)
    churn = Churn(registry, prefix)
    churn.seed()
    recipe = fleet_recipe(tmp_path / "r.yaml", registry, images)
    recipe.write_text(recipe.read_text() + f"  - '{registry.url}/{churn.rolling}:n*'\n")
    root, port = tmp_path / "repo", free_port()
    argv = [sys.executable, "-m", "ducc", "--log-format", "json", "loop", str(recipe)]
    argv += ["--publisher", "dir", "--root", str(root), "--state-dir", str(tmp_path / "state")]
    argv += ["--skip-podman", "--interval", "2s", "--metrics-listen", f"127.0.0.1:{port}"]
    log = tmp_path / "loop.log"
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    loop_process.append(proc)
    metrics_url = f"http://127.0.0.1:{port}/metrics"

    def converted() -> float:
        text = requests.get(metrics_url, timeout=10).text
        return metric(text, 'ducc_conversions_total{result="added"}')

    # Warm-up: every image of the fleet converted once.
    wait_until(lambda: proc.poll() is None and _answers(metrics_url) and converted() >= 54, 120)
    warm = converted_after(requests.get(metrics_url, timeout=10).text)
    started = time.monotonic()
    scrapes = 0
    with Sampler(proc.pid, interval=1.0) as sampler:
        with churn:
            while time.monotonic() - started < SOAK_SECONDS:
                assert proc.poll() is None, log.read_text()[-3000:]
                # Scraped every second, as a (very eager) Prometheus would: it answers throughout.
                assert requests.get(metrics_url, timeout=10).status_code == 200
                scrapes += 1
                time.sleep(1)
        assert churn.last is not None
        reference, text = churn.last
        app = root / registry.host / reference / "etc/app"
        wait_until(lambda: app.is_file() and app.read_text() == text, 30)  # still converting
        time.sleep(5)  # the last window sees the loop between polls as well as in them
    text_metrics = requests.get(metrics_url, timeout=10).text
    checks = metric(text_metrics, "ducc_registry_requests_total")
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    stopped = log.read_text()
    assert code == 0, stopped[-3000:]
    assert "stopped cleanly" in stopped
    assert ducc("verify", root).code == 0

    window = min(60.0, SOAK_SECONDS / 6)
    summary = sampler.summary(window=window)
    samples = os.environ.get("DUCC_LOAD_SAMPLES")
    if samples:
        sampler.write_csv(Path(samples))
    record(
        "soak",
        {
            "seconds": round(summary.seconds),
            "images": 54,
            "changes_pushed": churn.changes - 4,
            "conversions_during_soak": converted_after(text_metrics) - warm,
            "registry_requests": checks,
            "metrics_scrapes": scrapes,
            "window_s": window,
            **figures(summary),
        },
    )
    # The loop kept polling at the accelerated pace (a check per image per ~2 s, half of it
    # at least on a busy machine) and converted what changed.
    assert checks >= 0.5 * 54 * SOAK_SECONDS / 2.2
    assert converted_after(text_metrics) - warm >= 0.8 * (churn.changes - 4)
    # Over a short run a single step of the allocator (a dict or an arena growing once) is
    # a steep slope: allow 3 MiB over the run, and 1 MiB/min for runs longer than 3 minutes.
    assert summary.rss_slope_per_min < max(1 * MIB, 3 * MIB / (summary.seconds / 60))
    assert summary.last_rss <= summary.first_rss + 10 * MIB
    assert summary.last_threads <= summary.first_threads + 2
    # A conversion holds the repository and cache locks and a blob file for a moment, so the
    # median depends on what the samples caught; a leaked file raises the floor. Sockets: the
    # metrics listener, a scrape, and the registry session's pool (at most 10 kept-alive
    # connections to the one registry host) whatever the number of polls and conversions.
    assert summary.last_files_floor <= summary.first_files_floor + 1
    assert summary.peak_sockets <= 2 + 10
    assert summary.peak_fds < PEAK_FDS


def converted_after(text: str) -> float:
    """Conversions that published something (new tags and updated ones)."""
    added = metric(text, 'ducc_conversions_total{result="added"}')
    return added + metric(text, 'ducc_conversions_total{result="updated"}')


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.ConnectionError:
        return False
