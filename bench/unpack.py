"""Unpack one image on tmpfs: `ducc unpack` (from a local registry) vs GNU tar vs umoci.

Run: .venv/bin/python bench/unpack.py [--runs N] [--lib-mb MB]
Builds a 3-layer gzip image from files on this machine (/usr/share docs, man pages and perl,
part of /usr/lib/x86_64-linux-gnu, then an update layer with whiteouts, an opaque directory,
rewrites and hard links to lower files; symlinks and hard links throughout), pushes it to
Debian's docker-registry on 127.0.0.1 and writes it as an OCI layout. Each tool runs in a
child process into an empty directory on tmpfs; wall time and the child's peak RSS
(wait4) are taken, best of N runs. Compared: `ducc unpack` from the registry,
`unpack_layers` over the blob files, GNU `tar -xzf` of the blobs in sequence, `umoci unpack`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.images import Layer, make_image, write_oci_layout
from tests.support.registry import LocalRegistry, available

from ducc.oci.digest import Digest

LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
PYTHON = sys.executable
DUCC = str(Path(PYTHON).parent / "ducc")
REPOSITORY, TAG = "bench/unpack", "v1"


@dataclass(frozen=True)
class Result:
    seconds: float
    rss_mb: float


# -- building the image ---------------------------------------------------------------------


class LayerWriter:
    """A PAX tar written from files on disk, with extra hard links and whiteouts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.files: list[str] = []
        self.entries = 0
        self.data = 0

    def add_tree(self, source: str, budget: int, link_every: int) -> None:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            self.add(dirpath)
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.isfile(path) and not os.path.islink(path):
                    if self.data + os.path.getsize(path) > budget:
                        continue
                    self.data += os.path.getsize(path)
                self.add(path)
                if os.path.isfile(path) and not os.path.islink(path):
                    self.files.append(path.lstrip("/"))
                    if len(self.files) % link_every == 0:
                        self.link(path.lstrip("/") + ".hardlink", path.lstrip("/"))

    def add(self, path: str) -> None:
        info = self.tar.gettarinfo(path, arcname=path.lstrip("/"))
        info.mtime = int(info.mtime)  # whole seconds, as Docker and BuildKit write layers
        if info.isreg():
            with open(path, "rb") as data:
                self.tar.addfile(info, data)
        else:
            self.tar.addfile(info)
        self.entries += 1

    def link(self, name: str, target: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.LNKTYPE, target
        self.tar.addfile(info)
        self.entries += 1

    def file(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
        self.tar.addfile(info, _Bytes(data))
        self.entries += 1

    def close(self) -> None:
        self.tar.close()


class _Bytes:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n < 0 else self.pos + n
        chunk, self.pos = self.data[self.pos : end], end
        return chunk


def build_tars(work: Path, lib_budget: int) -> tuple[list[Path], int]:
    """Three layer tars; the total number of entries."""
    base = LayerWriter(work / "1-share.tar")
    for tree in ("/usr/share/doc", "/usr/share/man", "/usr/share/perl"):
        base.add_tree(tree, budget=1 << 40, link_every=40)
    base.close()
    libs = LayerWriter(work / "2-lib.tar")
    libs.add_tree("/usr/lib/x86_64-linux-gnu", budget=lib_budget, link_every=25)
    libs.close()
    update = LayerWriter(work / "3-update.tar")
    for i, name in enumerate(base.files[::50]):
        update.file(_whiteout(name) if i % 2 else name, b"" if i % 2 else b"rewritten\n" * i)
    update.file("usr/share/perl/.wh..wh..opq", b"")
    for i, name in enumerate(libs.files[::30]):
        update.link(f"usr/local/lib/link{i}", name)
    update.close()
    entries = base.entries + libs.entries + update.entries
    return [base.path, libs.path, update.path], entries


def _whiteout(name: str) -> str:
    parent, _, base = name.rpartition("/")
    return f"{parent}/.wh.{base}"


def compress(tars: list[Path]) -> list[Path]:
    """gzip -6 (the Go and Docker default), the layers in parallel."""
    processes = [subprocess.Popen(["gzip", "-6", "-n", "-k", "-f", str(tar)]) for tar in tars]
    for process in processes:
        if process.wait():
            raise RuntimeError("gzip failed")
    return [tar.with_suffix(".tar.gz") for tar in tars]


def diff_id(path: Path) -> str:
    with path.open("rb") as stream:
        return str(Digest("sha256", _sha256(stream)))


def _sha256(stream: object) -> str:
    import hashlib

    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):  # type: ignore[attr-defined]
        digest.update(chunk)
    return digest.hexdigest()


# -- running the tools ---------------------------------------------------------------------


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
    subprocess.run(timed, stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    _, peak_kb = report.read_text().split()
    return Result(seconds, int(peak_kb) / 1024)


UNPACK_LAYERS = """
import sys
from pathlib import Path
from ducc.digest import Digest
from ducc.unpack import LayerSource, unpack_layers
dest, *layers = sys.argv[1:]
sources = []
for item in layers:
    path, blob, size, diff = item.split(",")
    sources.append(LayerSource(path, "application/vnd.oci.image.layer.v1.tar+gzip",
        Digest.parse(blob), int(size), Digest.parse(diff), lambda p=path: open(p, "rb")))
unpack_layers(Path(dest), sources)
"""


def commands(
    work: Path, blobs: list[Path], diff_ids: list[str], host: str
) -> dict[str, tuple[list[str], Path]]:
    dest = work / "out"
    untar = " && ".join(f"tar -xzf {blob} -C {dest / 'rootfs'}" for blob in blobs)
    specs = [
        f"{blob},{Digest.of(blob.read_bytes())},{blob.stat().st_size},{d}"
        for blob, d in zip(blobs, diff_ids, strict=True)
    ]
    return {
        "ducc unpack (registry)": (
            [DUCC, "unpack", f"http://{host}/{REPOSITORY}:{TAG}", str(dest / "rootfs")],
            dest,
        ),
        "unpack_layers (files)": (
            [PYTHON, "-c", UNPACK_LAYERS, str(dest / "rootfs"), *specs],
            dest,
        ),
        "GNU tar -xzf": (["sh", "-c", f"mkdir {dest / 'rootfs'} && {untar}"], dest),
        "umoci unpack": (
            ["umoci", "unpack", "--image", f"{work / 'layout'}:{TAG}", str(dest / "bundle")],
            dest,
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lib-mb", type=int, default=200, help="MB taken from /usr/lib")
    args = parser.parse_args()
    for tool in ("umoci", "tar", "gzip", "/usr/bin/time"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (scripts/setup installs it)", file=sys.stderr)
            return 1
    if not available():
        print("docker-registry is not installed (scripts/setup installs it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="ducc-bench-unpack-", dir=_tmpfs()) as tmp:
        return run(Path(tmp), args.runs, args.lib_mb << 20)


def _tmpfs() -> str:
    """/dev/shm when it is a tmpfs with room; the caller may mount one instead."""
    stats = os.statvfs("/dev/shm")
    if stats.f_bavail * stats.f_frsize < 6 << 30:
        raise SystemExit("/dev/shm has less than 6 GiB free; mount a tmpfs and set TMPDIR")
    return "/dev/shm"


def run(work: Path, runs: int, lib_budget: int) -> int:
    started = time.perf_counter()
    tars, entries = build_tars(work, lib_budget)
    blobs = compress(tars)
    diff_ids = [diff_id(tar) for tar in tars]
    size = sum(tar.stat().st_size for tar in tars)
    for tar in tars:
        tar.unlink()
    layers = [Layer(b"", blob.read_bytes(), LAYER_GZIP) for blob in blobs]
    image = make_image(layers, diff_ids=diff_ids)
    write_oci_layout(work / "layout", {TAG: image})
    registry = LocalRegistry(work / "registry").start()
    try:
        registry.pusher().image(REPOSITORY, TAG, image)
        del layers, image
        compressed = sum(blob.stat().st_size for blob in blobs)
        print(
            f"image: {len(blobs)} gzip layers, {entries} entries, {size / 1e6:.0f} MB tar, "
            f"{compressed / 1e6:.0f} MB compressed (built in {time.perf_counter() - started:.0f} s)"
        )
        results = _measure_all(commands(work, blobs, diff_ids, registry.host), runs)
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
    return results


def _report(results: dict[str, list[Result]]) -> None:
    best = {name: min(r.seconds for r in rs) for name, rs in results.items()}
    rss = {name: max(r.rss_mb for r in rs) for name, rs in results.items()}
    for name, rs in results.items():
        times = ", ".join(f"{r.seconds:.2f}" for r in rs)
        print(f"{name:<24} best {best[name]:6.2f} s  peak RSS {rss[name]:6.1f} MB  [{times}]")
    ducc = best["ducc unpack (registry)"]
    print(f"ducc / GNU tar      = {ducc / best['GNU tar -xzf']:.2f}  (target <= 1.0)")
    print(f"umoci / ducc        = {best['umoci unpack'] / ducc:.2f}  (target >= 2.0)")
    print(f"ducc peak RSS       = {rss['ducc unpack (registry)']:.1f} MB  (target < 100 MB)")


if __name__ == "__main__":
    sys.exit(main())
