"""Service survival, measured: stalled registries, signals, damaged state, shared state
directories, a failed final step, colliding wishes, long names and damaged products.

Run: .venv/bin/python bench/survival.py [--src DIR] [--only NAME,...] [--cap SECONDS]
Each scenario runs `python -m ducc` as a user does (with `--src`, the ducc of another source
tree, e.g. an export of an older commit) against the local `docker-registry` and loopback
servers that stall, and prints one Markdown row: what was done, what ducc did, how long it
took. A run still going at the cap is killed and reported as such. Registry settings are
ducc's defaults unless the scenario names others.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.ducc import app_image, unique, write_recipe  # noqa: E402
from tests.support.images import directory, file, make_image, make_layer  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402
from tests.support.stall_server import Stall, StallServer  # noqa: E402


@dataclass
class Bench:
    src: Path
    cap: float
    work: Path
    registry: LocalRegistry

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        path = f"{self.src}/src{os.pathsep}{self.src}"
        return {**os.environ, "PYTHONPATH": path, **(extra or {})}

    def argv(self, *args: str | Path) -> list[str]:
        return [sys.executable, "-m", "ducc", *map(str, args)]

    def run(
        self, *args: str | Path, env: dict[str, str] | None = None, cap: float | None = None
    ) -> tuple[int | None, float, str]:
        """(exit code or None when killed at the cap, seconds, stderr + stdout)."""
        started = time.monotonic()
        proc = subprocess.Popen(
            self.argv(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env(env),
            text=True,
        )
        try:
            out, _ = proc.communicate(timeout=cap or self.cap)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            code = None
        return code, time.monotonic() - started, out

    def dir_args(self, name: str) -> list[str | Path]:
        state = self.work / name / "state"
        return ["--publisher", "dir", "--root", self.work / name / "repo", "--state-dir", state]

    def good_images(self, count: int) -> list[str]:
        name = unique("bench-good")
        refs = []
        for n in range(count):
            self.registry.pusher().image(f"{name}/app{n}", "1", app_image(f"{name}{n}"))
            refs.append(f"{self.registry.url}/{name}/app{n}:1")
        return refs


def outcome(code: int | None, seconds: float) -> str:
    if code is None:
        return f"still running, killed at {seconds:.0f} s"
    return f"exit {code} after {seconds:.1f} s"


# --- 1. stalled registries ------------------------------------------------------------------


def stalled(stall: Stall, env: dict[str, str] | None = None) -> Callable[[Bench], str]:
    def scenario(bench: Bench) -> str:
        with StallServer(stall, pace=1.0) as server:
            recipe = write_recipe(bench.work / f"{stall}.yaml", "b.test", [f"{server.url}/s/a:1"])
            code, seconds, _ = bench.run("convert", recipe, *bench.dir_args(str(stall)), env=env)
        return outcome(code, seconds)

    return scenario


def others_wait(bench: Bench) -> str:
    """A trickling registry first in the recipe, two good images after it."""
    good = bench.good_images(2)
    with StallServer(Stall.TRICKLE, pace=1.0) as server:
        recipe = write_recipe(bench.work / "mixed.yaml", "b.test", [f"{server.url}/s/a:1", *good])
        root = bench.work / "mixed" / "repo"
        links = [root / ref.split("://", 1)[1] for ref in good]
        started = time.monotonic()
        proc = subprocess.Popen(
            bench.argv("convert", recipe, *bench.dir_args("mixed")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=bench.env(),
        )
        published = None
        while time.monotonic() - started < bench.cap and proc.poll() is None:
            if published is None and all(link.is_symlink() for link in links):
                published = time.monotonic() - started
            time.sleep(0.2)
        killed = proc.poll() is None
        if killed:
            proc.kill()
        code: int | None = None if killed else proc.wait()
        proc.wait()
        total = time.monotonic() - started
        if published is None and all(link.is_symlink() for link in links):
            published = total
    shown = f"{published:.1f} s" if published is not None else "never"
    return f"good images published after {shown}; run: {outcome(code, total)}"


# --- 2. signals -----------------------------------------------------------------------------


def big_image(text: str) -> object:
    data = os.urandom(24 * 1024 * 1024)
    layer = make_layer([directory("data"), file("data/blob", data), file("etc/app", text)])
    return make_image([layer], cmd=["/bin/true"])


def sighup_storm(bench: Bench, trials: int = 8, storm: int = 500) -> str:
    deaths = []
    for trial in range(trials):
        name = unique("bench-hup")
        bench.registry.pusher().image(f"{name}/big", "1", big_image(f"hup{trial}"))  # type: ignore[arg-type]
        recipe = write_recipe(
            bench.work / "hup.yaml", "b.test", [f"{bench.registry.url}/{name}/big:1"]
        )
        args = bench.dir_args(f"hup{trial}")
        proc = subprocess.Popen(
            bench.argv("loop", recipe, *args, "--interval", "1h"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=bench.env(),
        )
        time.sleep(1.5)  # the conversion is under way
        for _ in range(storm):
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        alive = proc.poll() is None
        if alive:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        deaths.append(not alive or code != 0)
    return f"{sum(deaths)} of {trials} loops died ({storm} SIGHUPs each)"


def sigterm_in_backoff(bench: Bench) -> str:
    """SIGTERM 3 s into `ducc loop` retrying a registry that never answers."""
    env = {"DUCC_REGISTRY_READ_TIMEOUT": "1", "DUCC_REGISTRY_BACKOFF": "30"}
    with StallServer(Stall.SILENT, stall_probe=True) as server:
        images = [f"{server.url}/s/a:1", f"{server.url}/s/b:1"]
        recipe = write_recipe(bench.work / "term.yaml", "b.test", images)
        proc = subprocess.Popen(
            bench.argv("loop", recipe, *bench.dir_args("term")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=bench.env(env),
        )
        time.sleep(3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code: int | None = proc.wait(timeout=bench.cap)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = None
        took = time.monotonic() - sent
    return f"exited {took:.1f} s after SIGTERM (exit {code})"


# --- 3. state -------------------------------------------------------------------------------


def damaged_state(bench: Bench) -> str:
    good = bench.good_images(1)
    recipe = write_recipe(bench.work / "state.yaml", "b.test", good)
    args = bench.dir_args("state")
    state = bench.work / "state" / "state"
    bench.run("convert", recipe, *args)
    (state / "state.sqlite").write_bytes(b"garbage " * 1000)
    for suffix in ("-wal", "-shm"):
        (state / f"state.sqlite{suffix}").unlink(missing_ok=True)
    code, _, out = bench.run("convert", recipe, *args)
    again, _, _ = bench.run("convert", recipe, *args)
    status, _, _ = bench.run("status", "--state-dir", state)
    said = [x for x in out.splitlines() if "state" in x or x.startswith("error:")]
    line = (said[0] if said else "")[:110]
    return f"convert: exit {code}, next run exit {again}, status exit {status}; said: {line!r}"


def shared_state(bench: Bench, trials: int = 3) -> str:
    """Two converts on two repositories, one state directory, images sharing a 32 MB layer."""
    failures = 0
    for trial in range(trials):
        name = unique("bench-shared")
        data = make_layer([directory("data"), file("data/blob", os.urandom(32 * 1024 * 1024))])
        for n in range(4):
            top = make_layer([directory("etc"), file("etc/app", f"{trial}-{n}")])
            image = make_image([data, top], cmd=["/bin/true"])
            bench.registry.pusher().image(f"{name}/app{n}", "1", image)
        state = bench.work / f"shared{trial}" / "state"
        procs = []
        for side in ("a", "b"):
            refs = [f"{bench.registry.url}/{name}/app{n}:1" for n in range(4)]
            recipe = write_recipe(bench.work / f"shared-{side}.yaml", f"{side}.test", refs)
            root = bench.work / f"shared{trial}" / side
            args: list[str | Path] = ["--publisher", "dir", "--root", root, "--state-dir", state]
            procs.append(
                subprocess.Popen(
                    bench.argv("convert", recipe, *args),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=bench.env(),
                )
            )
        failures += sum(1 for p in procs if p.wait() != 0) > 0
    return f"{failures} of {trials} trials had a failed convert"


# --- 4. the final step, 5. collisions, 6. long names ----------------------------------------


def final_step(bench: Bench) -> str:
    good = bench.good_images(1)
    recipe = write_recipe(bench.work / "final.yaml", "b.test", good)
    root = bench.work / "final" / "repo"
    name = good[0].split("://", 1)[1]
    blocker = root / ".metadata" / name.rpartition("/")[0]
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way\n")  # the metadata directory cannot be made
    code, _, _ = bench.run("convert", recipe, *bench.dir_args("final"))
    link = (root / name).is_symlink()
    store = root / "podmanStore" / "overlay-images" / "images.json"
    names = (
        [n for e in json.loads(store.read_text() or "[]") for n in e.get("names", [])]
        if store.exists()
        else []
    )
    return f"convert exit {code}; public link left: {link}; podman names left: {len(names)}"


def collision(bench: Bench) -> str:
    good = bench.good_images(1)[0]
    pinned = good + "@sha256:" + "ab" * 32
    recipe = write_recipe(bench.work / "collide.yaml", "b.test", [good, pinned])
    code, _, out = bench.run("check", recipe)
    return f"check exit {code}: {out.strip().splitlines()[-1][:100]!r}"


def long_names(bench: Bench) -> str:
    """Public path components (`<repository>:<tag>`) of 241 to 255 bytes."""
    results = []
    for length in (241, 242, 248, 255):
        repository = unique("l").replace("-", "") + "a" * 190  # 200 characters
        tag = "t" * (length - len(repository) - 1)
        bench.registry.pusher().image(repository, tag, app_image(f"len{length}"))
        ref = f"{bench.registry.url}/{repository}:{tag}"
        recipe = write_recipe(bench.work / f"long{length}.yaml", "b.test", [ref])
        code, _, _ = bench.run("convert", recipe, *bench.dir_args(f"long{length}"))
        results.append(f"{length} bytes: exit {code}")
    return "; ".join(results)


# --- 7. repair ------------------------------------------------------------------------------


def repair(bench: Bench) -> str:
    """One damage per fresh repository: what `verify`, `verify --deep`, a plain `convert`
    and `convert --repair` make of it (exit codes; outcomes of the converts)."""
    image = bench.good_images(1)[0]
    other = bench.good_images(1)[0]
    name = image.split("://", 1)[1]
    rows = []
    for label, damage in DAMAGES.items():
        work = f"repair-{label.replace(' ', '-')}"
        recipe = write_recipe(bench.work / f"{work}.yaml", "b.test", [image])
        args = bench.dir_args(work)
        root = bench.work / work / "repo"
        bench.run("convert", recipe, *args)
        damage(root, name, bench.registry.url, other)
        verify, _, _ = bench.run("verify", root)
        deep, _, _ = bench.run("verify", "--deep", root)
        plain = json_outcome(bench.run("convert", "--json", recipe, *args)[2])
        after_plain = [bench.run("verify", *deep_flag, root)[0] for deep_flag in ([], ["--deep"])]
        fixed = json_outcome(bench.run("convert", "--json", "--repair", recipe, *args)[2])
        after, _, _ = bench.run("verify", "--deep", root)
        rows.append(
            f"{label}: verify {verify}, --deep {deep}; convert: {plain}, then verify "
            f"{after_plain[0]}, --deep {after_plain[1]}; convert --repair: {fixed}, then "
            f"--deep {after}"
        )
    return "<br>".join(rows)


def json_outcome(out: str) -> str:
    """The outcomes in `convert --json`'s summary (after any log lines on stderr)."""
    lines = out.splitlines()
    start = max((n for n, line in enumerate(lines) if line == "{"), default=None)
    try:
        summary = json.loads("\n".join(lines[start:])) if start is not None else {}
        return ",".join(r["outcome"] for r in summary["images"])
    except (ValueError, KeyError, TypeError):
        return "exit 2 (no such option)"


def _flat_file(root: Path, name: str, registry: str, other: str) -> None:
    ((root / name).resolve() / "etc" / "app").unlink()


def _layer_file(root: Path, name: str, registry: str, other: str) -> None:
    next(root.glob(".layers/*/*/layerfs/etc/app")).unlink()


def _layerfs(root: Path, name: str, registry: str, other: str) -> None:
    shutil.rmtree(next(p.parent for p in root.glob(".layers/*/*/layerfs/etc")))


def _layers_json(root: Path, name: str, registry: str, other: str) -> None:
    next(root.glob(".layers/*/*/.metadata/layers.json")).unlink()


def _config_json(root: Path, name: str, registry: str, other: str) -> None:
    (root / ".metadata" / name / "config.json").write_bytes(b"")


def _other_manifest(root: Path, name: str, registry: str, other: str) -> None:
    repository, _, tag = other.split("/", 3)[3].rpartition(":")
    accept = "application/vnd.oci.image.manifest.v1+json"
    url = f"{registry}/v2/{repository}/manifests/{tag}"
    raw = requests.get(url, headers={"Accept": accept}, timeout=10).content
    (root / ".metadata" / name / "manifest.json").write_bytes(raw)


DAMAGES: dict[str, Callable[[Path, str, str, str], None]] = {
    "file deleted from the flat tree": _flat_file,
    "file deleted from a layer": _layer_file,
    "layerfs removed": _layerfs,
    "layers.json removed": _layers_json,
    "config.json emptied": _config_json,
    "manifest.json naming another config": _other_manifest,
}


SCENARIOS: dict[str, Callable[[Bench], str]] = {
    "trickle-body": stalled(Stall.TRICKLE),
    "slow-headers": stalled(Stall.SLOW_HEADERS),
    "silent": stalled(Stall.SILENT),
    "others-wait": others_wait,
    "sighup-storm": sighup_storm,
    "sigterm-backoff": sigterm_in_backoff,
    "damaged-state": damaged_state,
    "shared-state": shared_state,
    "final-step": final_step,
    "collision": collision,
    "long-names": long_names,
    "repair": repair,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT, help="the ducc source tree to run")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--cap", type=float, default=400.0, help="seconds before a run is killed")
    options = parser.parse_args()
    names = [n for n in options.only.split(",") if n] or list(SCENARIOS)
    with tempfile.TemporaryDirectory(prefix="ducc-survival-") as tmp:
        registry = LocalRegistry(Path(tmp) / "registry").start()
        try:
            print("| scenario | ducc's behaviour |")
            print("|---|---|")
            for name in names:
                work = Path(tmp) / name
                work.mkdir()
                bench = Bench(options.src.resolve(), options.cap, work, registry)
                print(f"| {name} | {SCENARIOS[name](bench)} |", flush=True)
        finally:
            registry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
