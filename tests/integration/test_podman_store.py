"""The real podman reads the store ducc writes: it lists every image by name and runs one.

Each test builds small flat trees from this machine's `/bin/sh` (dash) and the libraries
`ldd` names, laid out under usrmerge symlinks, writes the Apptainer files and the store into
a temporary repository root, and points podman at it with `additionalimagestores` (through a
read-only bind mount, as clients see /cvmfs). Podman keeps everything it writes
(graph root, run root, tmp dir, network config, runc state) in one temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ducc.oci.digest import Digest
from ducc.repository.apptainer import write_apptainer_files
from ducc.repository.podman import PodmanStore
from tests.support.podman import RUNC, podman_configs, read_only_view, unmount_below

PODMAN = shutil.which("podman")
PROGRAMS = {"sh": "/bin/sh", "echo": "/bin/echo", "cat": "/bin/cat"}

pytestmark = [
    pytest.mark.integration,
    pytest.mark.root,
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed"),
    # Rootless podman needs subordinate IDs and a runtime dir of the user's own.
    pytest.mark.skipif(os.geteuid() != 0, reason="runs podman as root"),
]


@dataclass(frozen=True)
class Sandbox:
    repo: Path
    work: Path
    env: dict[str, str]

    @property
    def store(self) -> PodmanStore:
        return PodmanStore(self.repo / "podmanStore")

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(PODMAN), "--runtime", str(self.work / "bin/runc"), *args]
        result = subprocess.run(
            argv, check=False, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
        return result

    def listed(self) -> set[str]:
        out = self.podman("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").stdout
        return set(out.splitlines())

    def convert(self, label: str, *names: str) -> Digest:
        """What the pipeline does for one image: flat tree, Apptainer files, store entry."""
        env = ["PATH=/usr/bin:/bin", f"LABEL={label}"]
        cmd = ["/bin/sh", "-c", "echo default $LABEL"]
        config = image_config(env, cmd)
        digest = Digest.of(config)
        flat = self.repo / ".flat" / digest.prefix / digest.hex
        if not flat.exists():
            tiny_rootfs(flat)
            write_apptainer_files(flat, env=env, entrypoint=None, cmd=cmd)
        self.store.add_image(
            image_id=digest.hex,
            names=names,
            flat_dir=flat,
            manifest=image_manifest(config),
            config=config,
            config_digest=str(digest),
        )
        return digest


def image_config(env: list[str], cmd: list[str]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Env": env, "Cmd": cmd},
            "rootfs": {
                "type": "layers",
                "diff_ids": [str(Digest.of(b"".join(map(str.encode, env))))],
            },
        }
    ).encode()


def image_manifest(config: bytes) -> bytes:
    layer = Digest.of(config + b"layer")
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(Digest.of(config)),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": str(layer),
                    "size": 1,
                }
            ],
        }
    ).encode()


def tiny_rootfs(root: Path) -> None:
    """A root file system holding dash as /bin/sh, echo, cat and the libraries they load."""
    (root / "usr/bin").mkdir(parents=True)
    for top in ("bin", "lib", "lib64"):
        (root / top).symlink_to(f"usr/{top}")
    libraries: set[str] = set()
    for name, program in PROGRAMS.items():
        shutil.copy2(os.path.realpath(program), root / "usr/bin" / name)
        ldd = subprocess.run(["ldd", program], capture_output=True, text=True, check=True)
        libraries.update(re.findall(r"(/\S+) \(0x", ldd.stdout))
    for library in libraries:
        inside = library.lstrip("/")
        target = root / (inside if inside.startswith("usr/") else f"usr/{inside}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(library), target)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    repo = tmp_path / "repo"
    repo.mkdir()
    # Podman's own directories need a short path: under pytest's long tmp_path (base over
    # ~45 characters here) every `podman run` stalls 20 s before it returns.
    work = Path(tempfile.mkdtemp(prefix="ducc-podman-"))
    try:
        view = read_only_view(repo, work / "cvmfs")
        yield Sandbox(repo, work, podman_configs(work, view / "podmanStore"))
    finally:
        unmount_below(work)
        shutil.rmtree(work)


def test_podman_lists_every_image_by_name(sandbox: Sandbox) -> None:
    one = sandbox.convert("one", "registry.example/team/app:1", "registry.example/team/app:latest")
    two = sandbox.convert("two", "registry.example/team/other:2")
    assert sandbox.listed() == {
        f"registry.example/team/app:1 {one.hex[:12]}",
        f"registry.example/team/app:latest {one.hex[:12]}",
        f"registry.example/team/other:2 {two.hex[:12]}",
    }
    inspect = sandbox.podman(
        "image", "inspect", "--format", "{{.Id}} {{.Config.Env}} {{.Digest}}", "team/other:2"
    )
    manifest = (sandbox.store.root / "overlay-images" / two.hex / "manifest").read_bytes()
    assert inspect.stdout.split(" ", 1) == [
        two.hex,
        f"[PATH=/usr/bin:/bin LABEL=two] {Digest.of(manifest)}\n",
    ]


def test_a_moved_name_and_a_removed_image(sandbox: Sandbox) -> None:
    old = sandbox.convert("old", "registry.example/app:latest", "registry.example/app:1")
    new = sandbox.convert("new", "registry.example/app:2")
    sandbox.convert("new", "registry.example/app:latest")  # the tag moved to the new image
    assert sandbox.listed() == {
        f"registry.example/app:1 {old.hex[:12]}",
        f"registry.example/app:2 {new.hex[:12]}",
        f"registry.example/app:latest {new.hex[:12]}",
    }
    sandbox.store.remove_names(["registry.example/app:1"])  # an image left without a name
    assert f"<none>:<none> {old.hex[:12]}" in sandbox.listed()
    assert sandbox.store.remove_image(new.hex)
    assert sandbox.listed() == {f"<none>:<none> {old.hex[:12]}"}
    gone = sandbox.podman("image", "exists", "registry.example/app:latest", check=False)
    assert gone.returncode == 1


@pytest.mark.skipif(RUNC is None, reason="runc is not installed")
def test_podman_runs_a_container_from_the_flat_tree(sandbox: Sandbox) -> None:
    digest = sandbox.convert("one", "registry.example/app:1")
    run = ("run", "--rm", "--network", "none", "registry.example/app:1")
    assert sandbox.podman(*run, "/bin/sh", "-c", "echo ok").stdout == "ok\n"
    # No command: the image's CMD, as podman reads it from the stored config.
    assert sandbox.podman(*run).stdout == "default one\n"
    # The Apptainer files work inside the container too.
    assert sandbox.podman(*run, "/.singularity.d/runscript").stdout == "default one\n"
    exec_action = ("/.singularity.d/actions/exec", "/bin/sh", "-c", "echo $LABEL $LD_LIBRARY_PATH")
    assert sandbox.podman(*run, *exec_action).stdout == "one /.singularity.d/libs\n"
    # The container writes to its own upper layer, never into the flat tree.
    sandbox.podman(*run, "/bin/sh", "-c", "echo x > /written")
    assert not (sandbox.repo / ".flat" / digest.prefix / digest.hex / "written").exists()
