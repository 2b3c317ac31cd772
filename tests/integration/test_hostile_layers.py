"""Hostile layers end to end, as a user meets them: pushed to a real registry, then
`ducc convert` (dir publisher) over one recipe naming every case, and `ducc unpack` for a
subset. Refused cases fail their image with an error naming the layer and the entry and
publish nothing of it; contained cases convert with the attack neutralised inside the tree.
Whatever happens, nothing outside the repository, state and unpack targets changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.fakes.fixture import FakeCvmfs
from tests.support.ducc import Run, ducc, unique, write_recipe
from tests.support.hostile_cases import (
    BASE,
    CAP_OPTIONS,
    HostileCase,
    Targets,
    catalogue,
    mentions,
)
from tests.support.images import Image, file, make_image, make_layer
from tests.support.real_cvmfs import RealCvmfs
from tests.support.registry import LocalRegistry

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CASES = {case.id: case for case in catalogue(Targets("/outside", "/absent"))}
UNPACKED = [case_id for case_id, case in CASES.items() if case.unpack]
TARGETS = {"repo", "state", "unpack"}  # where ducc may write; everything else is watched
ETC_PASSWD = Path("/etc/passwd")


def view(base: Path, skip: set[str] = TARGETS) -> dict[str, tuple[object, ...]]:
    """Every path under `base` (minus the top-level `skip`): type, mode, owner, size, mtime
    and content or link target. Compared before and after, any write shows."""
    found: dict[str, tuple[object, ...]] = {}
    for top, dirs, files in os.walk(base):
        rel_top = os.path.relpath(top, base)
        if rel_top == ".":
            dirs[:] = [d for d in dirs if d not in skip]
        for name in [*dirs, *files]:
            path = os.path.join(top, name)
            info = os.lstat(path)
            body: object = None
            if stat.S_ISLNK(info.st_mode):
                body = os.readlink(path)
            elif stat.S_ISREG(info.st_mode):
                body = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            found[os.path.normpath(os.path.join(rel_top, name))] = (
                info.st_mode,
                info.st_uid,
                info.st_gid,
                info.st_size,
                info.st_mtime_ns,
                body,
            )
    return found


@dataclass
class World:
    base: Path
    targets: Targets
    cases: dict[str, HostileCase]
    images: dict[str, Image] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    before: dict[str, tuple[object, ...]] = field(default_factory=dict)
    passwd: bytes = b""
    run: Run | None = None
    seconds: float = 0.0
    unpacks: dict[str, Run] = field(default_factory=dict)

    @property
    def repo(self) -> Path:
        return self.base / "repo"

    def result(self, case_id: str, run: Run | None = None) -> dict[str, object]:
        run = run or self.run
        assert run is not None
        (found,) = [r for r in run.json()["images"] if r["image"] == self.refs[case_id]]
        return found  # type: ignore[no-any-return]

    def public(self, case_id: str, repo: Path | None = None) -> Path:
        return (repo or self.repo) / self.refs[case_id].split("://", 1)[1]

    def flat(self, case_id: str, repo: Path | None = None) -> Path:
        digest = self.images[case_id].config_digest.split(":", 1)[1]
        return (repo or self.repo) / ".flat" / digest[:2] / digest


def make_sentinel(outside: Path) -> None:
    (outside / "dir").mkdir(parents=True)
    (outside / "passwd").write_bytes(b"root:x:0:0:root:/root:/bin/sh\n")
    (outside / "dir/x").write_bytes(b"x")
    os.symlink("passwd", outside / "link")


def push(world: World, registry: LocalRegistry) -> None:
    name = unique("hostile")
    pusher = registry.pusher()
    for case_id, case in world.cases.items():
        image = make_image([BASE, *case.layers], labels={"hostile.case": case_id})
        pusher.image(f"{name}/{case_id}", "1", image)
        world.images[case_id] = image
        world.refs[case_id] = f"{registry.url}/{name}/{case_id}:1"


def unpack(world: World, case_id: str) -> Run:
    dest = world.base / "unpack" / case_id
    return ducc("unpack", *CAP_OPTIONS, "--json", world.refs[case_id], dest, timeout=120)


@pytest.fixture(scope="module")
def world(registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> World:
    """Every case pushed, converted in one `ducc convert`, the subset unpacked."""
    base = tmp_path_factory.mktemp("hostile")
    targets = Targets(str(base / "outside"), f"/tmp/ducc-hostile-{uuid.uuid4().hex}")
    world = World(base, targets, {c.id: c for c in catalogue(targets)})
    make_sentinel(base / "outside")
    push(world, registry)
    recipe = write_recipe(base / "recipe.yaml", "hostile.test", list(world.refs.values()))
    world.before, world.passwd = view(base), ETC_PASSWD.read_bytes()
    started = time.monotonic()
    world.run = ducc(
        *("convert", recipe, "--json", "--publisher", "dir"),
        *("--root", world.repo, "--state-dir", base / "state", *CAP_OPTIONS),
        timeout=300,
    )
    world.seconds = time.monotonic() - started
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = pool.map(lambda case_id: unpack(world, case_id), UNPACKED)
        world.unpacks = dict(zip(UNPACKED, runs, strict=True))
    print(  # the figures for bench/RESULTS.md (shown with `pytest -s`)
        f"\nhostile layers: {len(world.cases)} images converted in {world.seconds:.1f} s, "
        f"{len(UNPACKED)} unpacked in {time.monotonic() - started:.1f} s"
    )
    return world


# --- the whole run --------------------------------------------------------------------------


def test_catalogue_covers_every_kind_of_attack() -> None:
    assert len(CASES) >= 40
    categories = {case.category for case in CASES.values()}
    assert categories >= {
        *("traversal", "symlink", "hardlink", "whiteout", "device", "bomb"),
        *("path-length", "pax", "truncated", "compression"),
    }
    assert {case.expect for case in CASES.values()} == {"refused", "contained"}
    cross = [c for c in CASES.values() if len(c.parts) > 1]
    assert len(cross) >= 10  # escapes planted by one layer and used by the next


def test_bombs_are_small_on_the_wire(world: World) -> None:
    bombs = [c for c in world.cases.values() if c.category == "bomb"]
    assert len(bombs) >= 5
    for case in bombs:
        assert len(case.layers[-1].blob) < 2 << 20, case.id


def test_conversion_fails_cleanly_and_reports_every_image(world: World) -> None:
    run = world.run
    assert run is not None
    assert run.code == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr + run.stdout
    assert "unexpected" not in run.stderr
    reported = {r["image"] for r in run.json()["images"]}
    assert reported == set(world.refs.values())


def test_nothing_outside_the_targets_changed(world: World) -> None:
    assert view(world.base) == world.before
    assert not os.path.lexists(world.targets.absent)
    assert ETC_PASSWD.read_bytes() == world.passwd
    outside = Path(world.targets.outside)
    assert (outside / "passwd").read_bytes() == b"root:x:0:0:root:/root:/bin/sh\n"
    assert os.readlink(outside / "link") == "passwd"


def test_the_shared_base_layer_is_intact(world: World) -> None:
    """Cases write through hard links and over base files: the base's literal layer and the
    untouched flat trees still hold the original bytes."""
    digest = BASE.digest.split(":", 1)[1]
    layerfs = world.repo / ".layers" / digest[:2] / digest / "layerfs"
    assert (layerfs / "data/keep").read_bytes() == b"keep\n"
    assert (layerfs / "etc/os-release").read_bytes() == b"ID=hostile-base\n"
    assert not (layerfs / "data/alias").exists()
    tree = world.public("fifo-kept")
    assert (tree / "data/keep").read_bytes() == b"keep\n"


# --- each case ------------------------------------------------------------------------------


@pytest.mark.parametrize("case_id", list(CASES))
def test_case(world: World, case_id: str) -> None:
    case = world.cases[case_id]
    result = world.result(case_id)
    if case.expect == "refused":
        assert_refused(world, case, result, world.repo)
    else:
        assert_contained(world, case, result, world.repo)


def assert_refused(world: World, case: HostileCase, result: dict[str, object], repo: Path) -> None:
    error = str(result["error"])
    assert result["outcome"] == "failed", result["outcome"]
    assert f"layer {case.culprit_digest}" in error, error
    for says in case.says:
        assert mentions(error, says), error
    assert not os.path.lexists(world.public(case.id, repo))
    assert not os.path.lexists(world.flat(case.id, repo))


def assert_contained(
    world: World, case: HostileCase, result: dict[str, object], repo: Path
) -> None:
    assert result["outcome"] == "added", result["error"]
    tree = world.public(case.id, repo)
    assert tree.resolve() == world.flat(case.id, repo)
    assert (tree / ".singularity.d").is_dir()  # a complete flat tree
    assert case.check is not None
    case.check(tree)


@pytest.mark.parametrize("case_id", UNPACKED)
def test_unpack(world: World, case_id: str) -> None:
    case, run = world.cases[case_id], world.unpacks[case_id]
    dest = world.base / "unpack" / case_id
    assert "Traceback" not in run.stderr
    if case.expect == "refused":
        assert run.code == 1, run.stderr
        assert f"error: layer {case.culprit_digest}" in run.stderr
        for says in case.says:
            assert mentions(run.stderr, says), run.stderr
        assert not dest.exists()  # a failed unpack leaves no half tree
        return
    assert run.code == 0, run.stderr
    summary = json.loads(run.stdout)
    assert [layer["digest"] for layer in summary["layers"]][-len(case.layers) :] == [
        layer.digest for layer in case.layers
    ]
    assert case.check is not None
    case.check(dest)


def test_path_cap_is_the_users_to_set(
    world: World, registry: LocalRegistry, tmp_path: Path
) -> None:
    """A 1500-byte name is fine by default and refused under `--max-path-length 1024`."""
    name = "/".join(["q" * 99] * 15)
    image = make_image([BASE, make_layer([file(name, "long")])])
    repository = unique("hostile-cap")
    registry.pusher().image(repository, "1", image)
    ref = f"{registry.url}/{repository}:1"
    capped = ducc("unpack", "--max-path-length", "1024", ref, tmp_path / "capped")
    assert capped.code == 1
    assert f"layer {image.layers[-1].digest}" in capped.stderr
    assert "longer than 1024 bytes" in capped.stderr
    assert not (tmp_path / "capped").exists()
    free = ducc("unpack", ref, tmp_path / "free")
    assert free.code == 0, free.stderr
    assert (tmp_path / "free" / name).read_bytes() == b"long"


NO_MOUNTS = {"FAKE_CVMFS_NO_MOUNTS": "1"}
CVMFS_SUBSET = [
    *("dotdot-file", "symlink-absolute-across-layers", "hardlink-to-escaping-symlink"),
    *("hardlink-lower-then-overwrite", "whiteout-through-symlink", "fifo-then-file"),
    *("size-bomb-many-files", "gzip-bomb", "entry-count-bomb", "pax-mtime-nan"),
    *("truncated-zstd", "path-long-but-legal"),
]


def test_cvmfs_publisher_refuses_and_contains_alike(
    world: World, fake_cvmfs: FakeCvmfs, tmp_path: Path
) -> None:
    """The cvmfs publisher ingests layers through `cvmfs_server ingest` (a rebuilt tar),
    not the directory publisher's literal apply: same caps, same outcomes. The fake runs
    without mounts: a mounted fake repository can be swept by another pytest session."""
    cvmfs = dataclasses.replace(fake_cvmfs, repo="plain.repo")
    cvmfs.ok("mkfs", cvmfs.repo, env=NO_MOUNTS)
    refs = [world.refs[case_id] for case_id in CVMFS_SUBSET]
    recipe = write_recipe(tmp_path / "recipe.yaml", cvmfs.repo, refs)
    before = view(world.base)
    run = ducc(
        *("convert", recipe, "--json", "--publisher", "cvmfs"),
        *("--cvmfs-prefix", cvmfs.prefix, "--state-dir", tmp_path / "state"),
        *CAP_OPTIONS,
        env=NO_MOUNTS,
        timeout=300,
    )
    assert (run.code, bool(run.stdout)) == (1, True), run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    for case_id in CVMFS_SUBSET:
        case, result = world.cases[case_id], world.result(case_id, run)
        if case.expect == "refused":
            assert_refused(world, case, result, cvmfs.root)
        else:
            assert_contained(world, case, result, cvmfs.root)
    assert not cvmfs.mounts
    assert cvmfs.transactions() == []  # every refusal aborted its transaction
    assert view(world.base) == before
    assert not os.path.lexists(world.targets.absent)


@pytest.mark.real_cvmfs
@pytest.mark.root
def test_a_real_stratum_0_refuses_and_contains_alike(
    world: World, real_cvmfs: RealCvmfs, tmp_path: Path
) -> None:
    """The same layers through a real `cvmfs_server ingest`: every refusal aborts the
    ingest's own transaction and publishes nothing; contained cases are contained there too
    (hard links arrive broken up, as CernVM-FS stores them)."""
    repo = f"{real_cvmfs.repo}/hostile-{uuid.uuid4().hex[:8]}"
    refs = [world.refs[case_id] for case_id in CVMFS_SUBSET]
    recipe = write_recipe(tmp_path / "recipe.yaml", repo, refs)
    before = view(world.base)
    run = ducc(
        *("convert", recipe, "--json", "--publisher", "cvmfs"),
        *("--state-dir", tmp_path / "state"),
        *CAP_OPTIONS,
        timeout=600,
    )
    assert (run.code, bool(run.stdout)) == (1, True), run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    root = real_cvmfs.root / repo.split("/", 1)[1]
    for case_id in CVMFS_SUBSET:
        case, result = world.cases[case_id], world.result(case_id, run)
        if case.expect == "refused":
            assert_refused(world, case, result, root)
        else:
            assert_contained(world, case, result, root)
    assert not real_cvmfs.in_transaction()  # every refusal aborted its transaction
    assert view(world.base) == before
    assert not os.path.lexists(world.targets.absent)
    assert ducc("verify", root).code == 0


def test_the_repository_verifies_after_the_attacks(world: World) -> None:
    """Refused images left nothing half-built behind: every product is complete, and the
    contents of the layers, chains and flat trees of the images published agree."""
    run = ducc("verify", "--deep", "--json", world.repo)  # contents agree too
    assert run.code == 0, run.stdout[-3000:]
    report = run.json()[str(world.repo)]
    assert report["problems"] == []
