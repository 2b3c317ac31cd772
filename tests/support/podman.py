"""Run the real podman against a store ducc wrote, keeping all podman state in one temp dir.

Podman reads the store through a read-only bind mount, as clients see /cvmfs. Modest
ulimits (root's podman raises them otherwise, which needs CAP_SYS_RESOURCE), runc named by
path with its state inside the work dir, and a short work-dir path (under a long one every
`podman run` stalls 20 s here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PODMAN = shutil.which("podman")
RUNC = shutil.which("runc")


def podman_configs(work: Path, store: Path) -> dict[str, str]:
    """storage.conf and containers.conf that keep podman inside `work`."""
    (work / "storage.conf").write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{work / "graph"}"\n'
        f'runroot = "{work / "run"}"\n'
        "[storage.options]\n"
        f'additionalimagestores = ["{store}"]\n'
    )
    # Root's podman raises RLIMIT_NOFILE and RLIMIT_NPROC far up by default, which needs
    # CAP_SYS_RESOURCE; sandboxes and CI containers often drop it. Modest limits need nothing.
    (work / "containers.conf").write_text(
        "[containers]\n"
        'netns = "none"\n'
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{work / "libpod"}"\n'
        "[network]\n"
        f'network_config_dir = "{work / "net"}"\n'
    )
    (work / "tmp").mkdir()
    # runc named by path, so that conmon's cleanup call uses it too: runc's state stays here.
    (work / "bin").mkdir()
    (work / "bin/runc").write_text(f'#!/bin/sh\nexec {RUNC} --root "{work / "runc"}" "$@"\n')
    (work / "bin/runc").chmod(0o755)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "TMPDIR": str(work / "tmp"),
        "CONTAINERS_STORAGE_CONF": str(work / "storage.conf"),
        "CONTAINERS_CONF": str(work / "containers.conf"),
    }


def read_only_view(repo: Path, view: Path) -> Path:
    """`repo` bind-mounted read-only at `view`, as clients see /cvmfs."""
    view.mkdir()
    for options in (["--bind", str(repo)], ["-o", "remount,bind,ro"]):
        argv = ["mount", *options, str(view)]
        if subprocess.run(argv, check=False, capture_output=True).returncode != 0:
            pytest.fail(f"cannot bind-mount the repository read-only: {argv}")
    return view


def unmount_below(path: Path) -> None:
    """Podman leaves its graph root bind-mounted; undo every mount below `path`."""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(f"{path}/")), reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def run_podman(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [str(PODMAN), "--runtime", str(work / "bin/runc"), *args]
    return subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=120)
