"""What publishing costs the stratum 0: a first conversion of a Debian-based image, then a tag
update that adds one small layer, then a re-run that changes nothing.

Run (as root): .venv/bin/python bench/publish_cost.py [--server real|fake|auto] [--size S]
On a real CernVM-FS stratum 0 (`cvmfs_server` and `cvmfs2` installed, Apache running) a fresh
repository `ducc-test-bench-*.local` is created and removed; elsewhere the fake
`cvmfs_server` of tests/fakes stands in. Before each publish the regular files and bytes in
the transaction's upper (scratch) directory are counted: what `cvmfs_server publish` must
compress and hash. Printed per step: publishes (ingests, template transactions), files and
bytes through transactions, bytes ingested (layer trees), wall time; and whether the flat
tree equals `umoci unpack` of the same image (hard links and xattrs aside: CernVM-FS breaks
the first and, by default, drops the second).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes import calls as fake_calls
from tests.support import meter, real_cvmfs
from tests.support.debian import debian_layers, update_layer
from tests.support.images import Layer, make_image, write_oci_layout
from tests.support.real_cvmfs import upper_usage
from tests.support.registry import LocalRegistry
from tests.support.trees import flat_differences, umoci_rootfs

FAKES = Path(__file__).resolve().parent.parent / "tests" / "fakes"
REPOSITORY, TAG = "bench/debian", "stable"
MB = 1 << 20


@dataclass
class Step:
    name: str
    seconds: float = 0.0
    publishes: int = 0  # transactions published, ingests included
    ingests: int = 0
    templates: int = 0
    files: int = 0  # regular files in upper dirs before the publishes
    bytes: int = 0
    ingested_files: int = 0  # regular files and bytes of the layer trees ingested
    ingested_bytes: int = 0
    per_publish: list[tuple[int, int]] = field(default_factory=list)
    calls: list[tuple[str, float]] = field(default_factory=list)  # verb, seconds (real server)
    flat_equal: bool | None = None
    outcome: str = ""


@dataclass
class Target:
    kind: str
    repo: str
    root: Path
    env: dict[str, str]
    args: list[str]
    log: Path | None = None  # the meter's log (real server)
    fake_state: Path | None = None

    def publish_costs(self, since: int) -> tuple[list[tuple[str, bool, int, int, float]], int]:
        """(verb, template, upper files, upper bytes, seconds) of each call after the first
        `since`."""
        if self.log is not None:
            done = meter.calls(self.log)
            rows = [(c.verb, c.template, c.upper_files, c.upper_bytes, c.seconds) for c in done]
        else:
            assert self.fake_state is not None
            done_fake = fake_calls.calls(self.fake_state)
            rows = [
                (c.verb, c.template, c.upper_files, c.upper_bytes, c.end - c.start)
                for c in done_fake
                if c.exit_code == 0
            ]
        return rows[since:], len(rows)


@contextlib.contextmanager
def real_target(work: Path) -> Iterator[Target]:
    server = real_cvmfs.server_executable()
    assert server is not None
    holder = real_cvmfs.repository("bench")
    repo = next(holder)
    try:
        log = work / "meter.jsonl"
        env = meter.environment(log, server)
        args = ["--publisher", "cvmfs", "--state-dir", str(work / "state")]
        yield Target("real", repo.repo, repo.root, env, args, log=log)
    finally:
        with contextlib.suppress(StopIteration):
            next(holder)


@contextlib.contextmanager
def fake_target(work: Path) -> Iterator[Target]:
    state, prefix = work / "fake-state", work / "cvmfs"
    env = {
        "PATH": f"{FAKES}{os.pathsep}{os.environ['PATH']}",
        "FAKE_CVMFS_STATE": str(state),
        "FAKE_CVMFS_PREFIX": str(prefix),
    }
    subprocess.run(["cvmfs_server", "mkfs", "bench.repo"], env={**os.environ, **env}, check=True)
    args = ["--publisher", "cvmfs", "--cvmfs-prefix", str(prefix), "--state-dir", str(work)]
    try:
        yield Target("fake", "bench.repo", prefix / "bench.repo", env, args, fake_state=state)
    finally:
        subprocess.run(["umount", "-R", "-l", str(prefix / "bench.repo")], check=False)


def layer_trees(root: Path) -> set[Path]:
    return set(root.glob(".layers/*/*/layerfs"))


def tree_usage(trees: set[Path]) -> tuple[int, int]:
    files = size = 0
    for tree in trees:
        more_files, more_bytes = upper_usage(tree)
        files, size = files + more_files, size + more_bytes
    return files, size


def convert(target: Target, recipe: Path, step: Step, since: int, layout_ref: str) -> int:
    before = layer_trees(target.root)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ducc", "convert", str(recipe), "--json", *target.args],
        env={**os.environ, **target.env},
        capture_output=True,
        text=True,
        check=False,
    )
    step.seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"{step.name}: ducc convert failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    step.outcome = ",".join(sorted({i["outcome"] for i in report["images"]}))
    rows, total = target.publish_costs(since)
    for verb, template, files, size, seconds in rows:
        step.calls.append((verb, round(seconds, 2)))
        step.templates += template
        if verb == "publish":
            step.publishes += 1
            step.files += files
            step.bytes += size
            step.per_publish.append((files, size))
        elif verb in ("ingest", "overlay"):
            step.publishes += 1
            step.ingests += verb == "ingest"
    step.ingested_files, step.ingested_bytes = tree_usage(layer_trees(target.root) - before)
    link = next(target.root.glob(f"*/{REPOSITORY}:{TAG}"), None)
    if link is not None:
        with tempfile.TemporaryDirectory() as bundle:
            reference = umoci_rootfs(layout_ref, Path(bundle) / "b")
            step.flat_equal = not flat_differences(link.resolve(), reference)
    return total


def run(target: Target, work: Path, base: Layer, app: Layer) -> list[Step]:
    first = make_image([base, app], cmd=["/usr/bin/python3"])
    second = make_image([base, app, update_layer(2)], cmd=["/usr/bin/python3"])
    registry = LocalRegistry(work / "registry").start()
    try:
        recipe = work / "recipe.yaml"
        recipe.write_text(
            f"version: 1\ncvmfs_repo: '{target.repo}'\n"
            f"input:\n  - 'http://{registry.host}/{REPOSITORY}:{TAG}'\n"
        )
        steps: list[Step] = []
        since = 0
        for name, image in (("first conversion", first), ("tag update (+2 MB layer)", second)):
            registry.pusher().image(REPOSITORY, TAG, image)
            layout = work / f"layout-{len(steps)}"
            write_oci_layout(layout, {TAG: image})
            step = Step(name)
            since = convert(target, recipe, step, since, f"{layout}:{TAG}")
            steps.append(step)
        again = Step("re-run, nothing changed")
        convert(target, recipe, again, since, f"{work / 'layout-1'}:{TAG}")
        steps.append(again)
        return steps
    finally:
        registry.stop()


def print_table(kind: str, steps: list[Step], unpacked: int) -> None:
    print(f"\nserver: {kind}; image unpacked (sum of layer tars): {unpacked / MB:.1f} MB")
    header = (
        f"{'step':<26} {'publishes':>9} {'ingests':>7} {'templ':>5} {'files':>7} "
        f"{'MB txn':>8} {'MB ingested':>11} {'seconds':>8} {'= umoci':>7}"
    )
    print(header)
    for s in steps:
        equal = {True: "yes", False: "NO", None: "-"}[s.flat_equal]
        print(
            f"{s.name:<26} {s.publishes:>9} {s.ingests:>7} {s.templates:>5} {s.files:>7} "
            f"{s.bytes / MB:>8.1f} {s.ingested_bytes / MB:>11.1f} {s.seconds:>8.2f} {equal:>7}"
        )
        if s.per_publish:
            shown = ", ".join(f"{f} files/{b / MB:.1f} MB" for f, b in s.per_publish)
            print(f"{'':<26} per publish: {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["real", "fake", "auto"], default="auto")
    parser.add_argument("--size", choices=["bench", "test"], default="bench")
    parser.add_argument("--json", type=Path, help="write the figures here")
    options = parser.parse_args()
    kind = options.server
    if kind == "auto":
        kind = "fake" if real_cvmfs.missing() else "real"
    elif kind == "real" and real_cvmfs.missing():
        sys.exit(f"no real stratum 0: {real_cvmfs.missing()}")
    base, app = debian_layers(options.size)
    with tempfile.TemporaryDirectory(prefix="ducc-bench-") as scratch:
        work = Path(scratch)
        factory = real_target if kind == "real" else fake_target
        with factory(work) as target:
            steps = run(target, work, base, app)
    unpacked = len(base.tar) + len(app.tar)
    print_table(kind, steps, unpacked)
    if options.json:
        options.json.write_text(json.dumps([asdict(s) for s in steps], indent=1) + "\n")


if __name__ == "__main__":
    main()
