"""Crash trials: `ducc convert` killed with SIGKILL at a random moment, then the invariants a
stratum 0 must keep: what clients see is complete and nothing published is lost, and the next
run completes and leaves the repository equal to a clean conversion.

Most kills take ducc and every process it started (its `cvmfs_server` children run in
sessions of their own), as systemd kills a crashed service's cgroup; the others kill only
ducc, and its children finish on their own before anything is checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ducc.repository.verify import verify
from tests.support.ducc import Run, ducc, write_recipe
from tests.support.images import Image, directory, file, hardlink, make_image, make_layer, symlink
from tests.support.registry import LocalRegistry

# cvmfs_server faults a trial may inject into the run it kills (tests/fakes/README.md).
FAULTS: tuple[tuple[str, Sequence[str]], ...] = (
    # an image publishes up to 6 times (shard directories, chains, flat tree, final step)
    ("FAKE_CVMFS_FAIL_PUBLISH", ("1", "2", "3", "4", "5", "6")),
    ("FAKE_CVMFS_FAIL_INGEST", ("1", "2")),
    ("FAKE_CVMFS_FAIL_TRANSACTION", ("1", "2", "3")),
    ("FAKE_CVMFS_DIE_INGEST", ("1", "2")),
    ("FAKE_CVMFS_SLOW_PUBLISH", ("0.3", "0.6")),
)
# ducc's log events (`-v`), mapped to the phase a kill right after them interrupts.
PHASES = {
    "poll_result": "poll",
    "stale_transaction_aborted": "recovery",
    "stale_staging_removed": "recovery",
    "blob_download": "download",
    "transaction_opened": "transaction open",
    "flat_built": "between steps",
    "chain_built": "between steps",
    "incomplete_product_rebuilt": "recovery",
    "layer_ingested": "ingest",
    "transaction_published": "between steps",
    "transaction_aborted": "between steps",
    "podman_image_added": "transaction open",
    "image_converted": "between images",
    "image_failed": "between images",
}
DRAIN_TIMEOUT = 60.0
WAVE = "ab"  # the images of a wave (tags w<wave>-a, w<wave>-b)


@dataclass(frozen=True, slots=True)
class Target:
    """Where runs publish: `args` for ducc, `mount` the tree ducc writes, `view` the tree
    clients see (the `dir` root, or the fake's published tree `state/<repo>/rdonly`),
    `fake_state` for a cvmfs publisher."""

    publisher: str
    args: tuple[str, ...]
    mount: Path
    view: Path
    state_dir: Path
    repo: str
    fake_state: Path | None = None

    @property
    def downloads(self) -> Path:
        return self.state_dir / "downloads"


@dataclass(frozen=True, slots=True)
class Kill:
    """What one killed run did: when the kill landed and what was running then."""

    plan: Plan
    killed: bool  # False: the run had ended before the kill
    exit_code: int
    phase: str
    seconds: float


@dataclass(slots=True)
class TrialResult:
    kill: Kill
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0  # the checks and the next run

    def as_json(self, publisher: str) -> dict[str, object]:
        kill = self.kill
        return {
            "publisher": publisher,
            "seed": kill.plan.seed,
            "delay": round(kill.plan.delay, 3),
            "everything": kill.plan.everything,
            "faults": kill.plan.faults,
            "killed": kill.killed,
            "exit": kill.exit_code,
            "phase": kill.phase,
            "violations": self.violations,
            "seconds": round(kill.seconds + self.seconds, 2),
        }


def convert_command(recipe: Path, target: Target, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ducc",
        "-v",
        "--log-format",
        "json",
        "convert",
        os.fspath(recipe),
        "--json",
        *target.args,
        *extra,
    ]


def convert(recipe: Path, target: Target) -> Run:
    """An uninterrupted run, no faults."""
    return ducc("-v", "--log-format", "json", "convert", recipe, "--json", *target.args)


@dataclass(frozen=True, slots=True)
class Window:
    """An uninterrupted run: its duration, and when its work began (after the poll)."""

    seconds: float
    work: float


def timed_convert(recipe: Path, target: Target) -> tuple[Run, Window]:
    started, clock = time.monotonic(), time.time()
    run = convert(recipe, target)
    seconds = time.monotonic() - started
    return run, Window(seconds, min(seconds, first_work(run.stderr) - clock))


def first_work(log: str) -> float:
    """When the first event after the poll was logged (epoch seconds)."""
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if PHASES.get(record.get("event"), "poll") != "poll":
            when = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            return when.timestamp()
    return math.inf


# --- processes -------------------------------------------------------------------------


def process_tree(root: int) -> list[tuple[int, str]]:
    """(pid, argv) of `root` and its live descendants (zombies are dead), parents first."""
    parents: dict[int, list[int]] = {}
    argvs: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_text = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat_text.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry))
            argvs[int(entry)] = " ".join(a.decode(errors="replace") for a in argv if a)
    found, pending = [], [root]
    while pending:
        pid = pending.pop(0)
        if pid in argvs:
            found.append((pid, argvs[pid]))
        pending += parents.get(pid, [])
    return found


def in_flight_verb(tree: list[tuple[int, str]]) -> str | None:
    """The `cvmfs_server` verb running in the tree, if any."""
    for _, argv in tree[1:]:
        words = argv.split()
        for i, word in enumerate(words[:-1]):
            if word.endswith("cvmfs_server"):
                return words[i + 1]
    return None


def drain(pids: list[int]) -> None:
    """Wait until none of `pids` runs (children outliving ducc finish first)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while alive := [p for p in pids if _running(p)]:
        if time.monotonic() > deadline:
            for pid in alive:
                os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"processes {alive} still ran {DRAIN_TIMEOUT}s after the kill")
        time.sleep(0.02)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def last_phase(log: str) -> str:
    phase = "startup"
    for line in log.splitlines():
        try:
            event = json.loads(line).get("event")
        except ValueError:
            continue
        phase = PHASES.get(event, phase)
    return phase


@dataclass(frozen=True, slots=True)
class Plan:
    """A trial's random choices, all from its seed."""

    seed: int
    delay: float
    everything: bool  # ducc and every process it started, as a cgroup; else only ducc
    faults: dict[str, str]


def plan(seed: int, window: Window, *, fault: int | None, publishes: int) -> Plan:
    """The kill lands anywhere in an uninterrupted run (widened by the sleeps of an injected
    slow publish): a third of the kills anywhere, the rest once the work has started (the
    interpreter's start and the poll take most of a short run). A quarter of the kills hit
    only ducc itself. `fault` picks the kind of fault from FAULTS (in turn), the seed its
    value."""
    rng = random.Random(seed)
    faults: dict[str, str] = {}
    end = window.seconds
    if fault is not None:
        variable, values = FAULTS[fault % len(FAULTS)]
        faults[variable] = rng.choice(values)
        if variable == "FAKE_CVMFS_SLOW_PUBLISH":
            end += float(faults[variable]) * publishes
    start = 0.0 if rng.random() < 1 / 3 else window.work
    return Plan(seed, rng.uniform(start, end), rng.random() >= 0.25, faults)


def killed_run(recipe: Path, target: Target, trial: Plan, logs: Path) -> Kill:
    """Start a conversion; after the planned delay SIGKILL it and every process it started
    (or only ducc itself)."""
    err = logs / f"seed{trial.seed}.log"
    started = time.monotonic()
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            convert_command(recipe, target),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={**os.environ, **trial.faults},
            start_new_session=True,
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=trial.delay)
        tree: list[tuple[int, str]] = []
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGSTOP)  # no new child while the tree is read
            tree = process_tree(proc.pid)
            for pid, _ in tree if trial.everything else tree[:1]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        code = proc.wait()
        drain([pid for pid, _ in tree])
        verb = in_flight_verb(tree)
    seconds = time.monotonic() - started
    if not killed:
        phase = "completed"
    elif verb is not None:
        phase = f"cvmfs_server {verb}"
    else:
        phase = last_phase(err.read_text(errors="replace"))
    return Kill(trial, killed, code, phase, seconds)


# --- what clients see ------------------------------------------------------------------


def fingerprint(tree: Path) -> dict[str, str]:
    """Every entry below `tree`: type, mode, owner, and content or link target (no times)."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = os.path.relpath(path, tree)
            head = (
                f"{stat.S_IFMT(st.st_mode):o}:{stat.S_IMODE(st.st_mode):o}:{st.st_uid}:{st.st_gid}"
            )
            if stat.S_ISREG(st.st_mode):
                found[rel] = f"{head}:{hashlib.sha256(path.read_bytes()).hexdigest()}"
            elif stat.S_ISLNK(st.st_mode):
                found[rel] = f"{head}:{os.readlink(path)}"
            else:
                found[rel] = head
    return found


def recorded(view: Path) -> set[str]:
    """Images the repository records as published (`.metadata/<name>/manifest.json`)."""
    top = view / ".metadata"
    names = set()
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == top:
            dirnames[:] = [d for d in dirnames if d != ".multiarch"]
        if "manifest.json" in filenames:
            names.add(os.path.relpath(dirpath, top))
            dirnames[:] = []
    return names


def public_images(view: Path, names: Sequence[str]) -> dict[str, Path | None]:
    """Each of `names` whose public path exists: where it resolves inside `view` (None when
    it leads nowhere or outside)."""
    found: dict[str, Path | None] = {}
    for name in names:
        link = view / name
        if not os.path.lexists(link):
            continue
        target = link.resolve()
        inside = target.is_relative_to(view.resolve()) and target.is_dir()
        found[name] = target if inside else None
    return found


def check_visible(
    view: Path, names: Sequence[str], expected: Mapping[str, dict[str, str]]
) -> list[str]:
    """Every public path resolves to a flat tree equal to the clean conversion's, and every
    recorded image has one; verify finds no problem."""
    problems = []
    public = public_images(view, names)
    for name, target in sorted(public.items()):
        if target is None:
            problems.append(f"{name}: public path does not resolve to a tree in the repository")
        elif fingerprint(target) != expected[name]:
            problems.append(f"{name}: flat tree differs from the clean conversion")
    for name in sorted(recorded(view) - set(public)):
        problems.append(f"{name}: recorded as published but has no public path")
    report = verify(view)  # what `ducc verify` runs, without a process per check
    problems += [f"verify {view}: {p}" for p in report.problems]
    return problems


def open_transactions(target: Target) -> list[str]:
    """Transactions the fake records as open (none for the dir publisher)."""
    if target.fake_state is None:
        return []
    meta = json.loads((target.fake_state / target.repo / "meta.json").read_text())
    return [f"{t['kind']} on /{t['path']}" for t in meta["transactions"]]


def leftovers(target: Target) -> list[str]:
    """What a completed run must not leave behind: blobs or partial downloads in the blob
    cache, transaction records, staging directories in the repository."""
    found = []
    if target.downloads.is_dir():
        files = [p for p in target.downloads.rglob("*") if p.is_file() and p.name != ".lock"]
        found += [f"blob cache: {p}" for p in files]
    records = target.state_dir / "transactions"
    if records.is_dir():
        found += [f"transaction record: {p.name}" for p in records.iterdir()]
    staging = (
        ".layers/*/.*.tmp-*",
        ".layers/*/*/.*.tmp-*",
        ".chains/*/.*.tmp-*",
        ".flat/*/.*.tmp-*",
    )
    for pattern in staging:
        found += [f"staging: {p}" for p in target.view.glob(pattern)]
    return found


def fake_revision(target: Target) -> int | None:
    if target.fake_state is None:
        return None
    meta = json.loads((target.fake_state / target.repo / "meta.json").read_text())
    revision: int = meta["revision"]
    return revision


# --- a campaign: one repository, one wave of new tags per trial ------------------------


def wave_images(seed: int, wave: int) -> dict[str, Image]:
    """Two images sharing a base layer (one also a middle layer), new in every wave: with
    the waves before, a recipe of at least four images sharing the base."""
    base = make_layer(
        [
            directory("etc"),
            file("etc/os-release", "ID=crash\n"),
            directory("usr/lib"),
            file("usr/lib/blob", random.Random(seed).randbytes(192 * 1024)),
            hardlink("usr/lib/blob-link", "usr/lib/blob"),
            symlink("lib", "usr/lib"),
        ]
    )
    middle = make_layer([directory("opt"), file(f"opt/wave-{wave}", str(wave))])
    images = {}
    for letter, layers in (("a", [base]), ("b", [base, middle])):
        text = f"{seed}-{wave}-{letter}"
        top = make_layer([directory("etc"), file("etc/app", text), file(f"etc/{letter}", text)])
        images[f"w{wave}-{letter}"] = make_image([*layers, top], cmd=["/bin/cat", "/etc/app"])
    return images


@dataclass(slots=True)
class Campaign:
    """Trials one after another on one repository: each adds a wave of tags to the recipe
    (new work), kills a run, checks what clients see, runs again and checks the result."""

    registry: LocalRegistry
    target: Target
    workdir: Path
    seed: int
    trials: int
    recipe: Path = field(init=False)
    refs: list[str] = field(default_factory=list)
    expected: dict[str, dict[str, str]] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    window: Window = Window(0.0, 0.0)
    publishes: int = 0
    logs: Path = field(init=False)

    def prepare(self) -> None:
        """Push every wave, publish wave 0, then wave 1 as a trial's run would, timed: the
        kill window. Convert every wave once cleanly with the dir publisher: the reference
        trees."""
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True)
        repository = f"crash-{self.target.publisher}-{self.seed}/app"
        pusher = self.registry.pusher()
        all_refs = []
        for wave in range(self.trials + 2):
            for tag, image in wave_images(self.seed, wave).items():
                pusher.image(repository, tag, image)
                all_refs.append(f"{self.registry.url}/{repository}:{tag}")
        self.recipe = self.workdir / "recipe.yaml"
        for wave in (0, 1):
            self.refs = all_refs[: len(WAVE) * (wave + 1)]
            write_recipe(self.recipe, self.target.repo, self.refs)
            run, self.window = timed_convert(self.recipe, self.target)
            assert run.code == 0, run.stderr[-3000:]
        self.publishes = int(run.json()["publishes"])
        self._reference(all_refs)

    def _reference(self, refs: list[str]) -> None:
        root = self.workdir / "reference"
        recipe = write_recipe(self.workdir / "reference.yaml", self.target.repo, refs)
        # Another way to the same flat trees: every layer applied in turn, no chains.
        args = ("--publisher", "dir", "--root", os.fspath(root), "--skip-chains", "-p")
        state = self.workdir / "reference-state"
        reference = Target(
            "dir", (*args, "--state-dir", os.fspath(state)), root, root, state, self.target.repo
        )
        run = convert(recipe, reference)
        assert run.code == 0, run.stderr[-3000:]
        self.names = sorted(recorded(root))
        assert len(self.names) == len(refs)
        self.expected = {name: fingerprint((root / name).resolve()) for name in self.names}

    def trial(self, index: int, *, fault: int | None) -> TrialResult:
        self.refs += [
            f"{self.registry.url}/crash-{self.target.publisher}-{self.seed}/app:w{index + 1}-{x}"
            for x in WAVE
        ]
        write_recipe(self.recipe, self.target.repo, self.refs)
        view = self.target.view
        before, revision = recorded(view), fake_revision(self.target)
        seed = self.seed * 1000 + index
        choices = plan(seed, self.window, fault=fault, publishes=self.publishes)
        kill = killed_run(self.recipe, self.target, choices, self.logs)
        result = TrialResult(kill)
        started = time.monotonic()
        bad = result.violations
        bad += [f"after the kill: {p}" for p in check_visible(view, self.names, self.expected)]
        bad += [f"after the kill: {n} lost" for n in sorted(before - recorded(view))]
        after = fake_revision(self.target)
        if revision is not None and after is not None and after < revision:
            bad.append(f"after the kill: revision went back from {revision} to {after}")
        again = convert(self.recipe, self.target)
        if again.code != 0:
            bad.append(f"next run: exit {again.code}: {again.stderr[-2000:]}")
        bad += [f"next run: {p}" for p in check_visible(view, self.names, self.expected)]
        bad += [f"next run: {p}" for p in self._complete(before)]
        result.seconds = time.monotonic() - started
        return result

    def _complete(self, before: set[str]) -> list[str]:
        """Every wished image published, nothing lost, no transaction open, nothing left."""
        view = self.target.view
        problems = [f"{n} lost" for n in sorted(before - recorded(view))]
        wished = {n for n in self.names if any(n.endswith(r.rpartition("/")[2]) for r in self.refs)}
        public = public_images(view, self.names)
        problems += [f"{n} not published" for n in sorted(wished - set(public))]
        problems += [f"transaction left open: {t}" for t in open_transactions(self.target)]
        problems += leftovers(self.target)
        check = ducc("verify", self.target.mount)
        if check.code != 0:
            problems.append(f"ducc verify {self.target.mount}: {check.stdout.strip()}")
        if self.target.fake_state is not None:
            listed = subprocess.run(
                ["cvmfs_server", "list"], capture_output=True, text=True, check=False, cwd="/"
            )
            if "in transaction" in listed.stdout or listed.returncode != 0:
                problems.append(f"cvmfs_server list: {listed.stdout.strip()} {listed.stderr}")
        return problems
