"""One Debian-based image on tmpfs: `ducc unpack` against GNU tar and `umoci unpack`, and
`ducc convert` (directory publisher) against `skopeo copy` + `umoci unpack`.

Run: .venv/bin/python bench/unpack.py [--runs N] [--size bench|test]
The image is `tests/support/debian.py`'s (2 gzip layers built from this machine's files:
python3 with its standard library and data over usrmerge links, then an application layer
with rewrites, a whiteout, an opaque directory and hard links), pushed to Debian's
docker-registry on 127.0.0.1 and written as an OCI layout for the peers. Each tool runs in a
child process into an empty directory on tmpfs, measured by GNU time (wall time, peak RSS);
best and median of N runs. Compared side by side in one run:

- `ducc unpack` from the registry vs GNU `tar -xzf` of the same blobs in turn, and
  `umoci unpack` of the OCI layout: the flat root filesystem alone;
- `ducc convert` from the registry with the directory publisher (layer trees, chains, the
  flat tree with Apptainer's files, podman entry, metadata) vs what a user scripts by hand
  for the flat tree alone: `skopeo copy` from the registry into an OCI layout, then
  `umoci unpack`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.debian import debian_layers
from tests.support.images import make_image, write_oci_layout
from tests.support.registry import LocalRegistry, available

PYTHON = sys.executable
DUCC = [PYTHON, "-m", "ducc"]  # also runs an older tree on PYTHONPATH (`--before` figures)
REPOSITORY, TAG = "bench/debian", "stable"
# A pause after each run: freeing the last output's pages (hundreds of MB of tmpfs) goes on
# in the kernel after rmtree returns and would otherwise be charged to the next tool.
SETTLE_SECONDS = 1.0


@dataclass(frozen=True)
class Result:
    seconds: float
    rss_mb: float


def measure(argv: list[str], dest: Path) -> Result:
    """Run `argv` into the fresh directory `dest`; wall time and peak RSS of the child.

    GNU time forks the child itself: a child forked from this (large) process would count
    our pages in its peak RSS until it execs.
    """
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir()
    report = dest.parent / "time.txt"
    timed = ["/usr/bin/time", "-f", "%e %M", "-o", str(report), *argv]
    started = time.perf_counter()
    subprocess.run(timed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    _, peak_kb = report.read_text().split()
    return Result(seconds, int(peak_kb) / 1024)


def commands(work: Path, blobs: list[Path], host: str) -> dict[str, tuple[list[str], Path]]:
    dest = work / "out"
    image = f"http://{host}/{REPOSITORY}:{TAG}"
    untar = " && ".join(f"tar -xzf {blob} -C {dest / 'rootfs'}" for blob in blobs)
    recipe = work / "recipe.yaml"
    recipe.write_text(f"version: 1\ncvmfs_repo: bench.local\ninput:\n  - '{image}'\n")
    by_hand = (
        f"skopeo copy --quiet --src-tls-verify=false docker://{host}/{REPOSITORY}:{TAG}"
        f" oci:{dest / 'layout'}:{TAG}"
        f" && umoci unpack --image {dest / 'layout'}:{TAG} {dest / 'bundle'}"
    )
    convert = [*DUCC, "convert", str(recipe), "--publisher", "dir", "--root", str(dest / "repo")]
    return {
        "ducc unpack": ([*DUCC, "unpack", image, str(dest / "rootfs")], dest),
        "GNU tar -xzf": (["sh", "-c", f"mkdir {dest / 'rootfs'} && {untar}"], dest),
        "umoci unpack": (
            ["umoci", "unpack", "--image", f"{work / 'layout'}:{TAG}", str(dest / "bundle")],
            dest,
        ),
        "ducc convert (dir)": ([*convert, "--state-dir", str(dest / "state")], dest),
        "skopeo copy + umoci unpack": (["sh", "-c", by_hand], dest),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", choices=["bench", "test"], default="bench")
    args = parser.parse_args()
    for tool in ("umoci", "skopeo", "tar", "/usr/bin/time"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup installs it)", file=sys.stderr)
            return 1
    if not available():
        print("docker-registry is not installed (scripts/setup installs it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ducc-bench-unpack-", dir=_tmpfs()) as tmp:
        return run(Path(tmp), args.runs, args.size)


def _tmpfs() -> str:
    """/dev/shm when it is a tmpfs with room; the caller may mount one instead."""
    stats = os.statvfs("/dev/shm")
    if stats.f_bavail * stats.f_frsize < 3 << 30:
        raise SystemExit("/dev/shm has less than 3 GiB free; mount a tmpfs and set TMPDIR")
    return "/dev/shm"


def compile_ducc() -> None:
    """Bytecode for the ducc that runs (this tree's, or the one on PYTHONPATH), as an
    installed ducc has it: pip compiles at install, while an editable tree where
    PYTHONDONTWRITEBYTECODE is set would be compiled on every run (about 60 ms of ~110
    modules), which no user pays."""
    import ducc

    package = str(Path(ducc.__file__).parent)
    subprocess.run([PYTHON, "-m", "compileall", "-q", package], check=True)


def run(work: Path, runs: int, size: str) -> int:
    compile_ducc()
    base, app = debian_layers("bench" if size == "bench" else "test")
    image = make_image([base, app], cmd=["/usr/bin/python3"])
    blobs = []
    for n, layer in enumerate(image.layers):
        blobs.append(work / f"layer{n}.tar.gz")
        blobs[-1].write_bytes(layer.blob)
    write_oci_layout(work / "layout", {TAG: image})
    registry = LocalRegistry(work / "registry").start()
    try:
        registry.pusher().image(REPOSITORY, TAG, image)
        tar_bytes = sum(len(layer.tar) for layer in image.layers)
        compressed = sum(len(layer.blob) for layer in image.layers)
        print(
            f"image: {len(blobs)} gzip layers, {tar_bytes / 1e6:.0f} MB tar, "
            f"{compressed / 1e6:.0f} MB compressed"
        )
        del base, app, image
        results = _measure_all(commands(work, blobs, registry.host), runs)
    finally:
        registry.stop()
    _report(results)
    return 0


def _measure_all(plan: dict[str, tuple[list[str], Path]], runs: int) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = {name: [] for name in plan}
    for _ in range(runs):
        for name, (argv, dest) in plan.items():
            results[name].append(measure(argv, dest))
            shutil.rmtree(dest, ignore_errors=True)
            time.sleep(SETTLE_SECONDS)
    return results


def _report(results: dict[str, list[Result]]) -> None:
    best = {name: min(r.seconds for r in rs) for name, rs in results.items()}
    median = {name: statistics.median(r.seconds for r in rs) for name, rs in results.items()}
    rss = {name: max(r.rss_mb for r in rs) for name, rs in results.items()}
    for name, rs in results.items():
        times = ", ".join(f"{r.seconds:.2f}" for r in rs)
        print(
            f"{name:<28} best {best[name]:6.2f} s  median {median[name]:6.2f} s  "
            f"peak RSS {rss[name]:6.1f} MB  [{times}]"
        )
    by_hand = median["skopeo copy + umoci unpack"]
    print(
        f"ducc unpack / GNU tar             = {median['ducc unpack'] / median['GNU tar -xzf']:.2f}"
    )
    print(
        f"umoci unpack / ducc unpack        = {median['umoci unpack'] / median['ducc unpack']:.2f}"
    )
    print(f"ducc convert / (skopeo + umoci)   = {median['ducc convert (dir)'] / by_hand:.2f}")
    peak = max(rss["ducc unpack"], rss["ducc convert (dir)"])
    print(f"ducc peak RSS                     = {peak:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
