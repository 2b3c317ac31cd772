"""Run ducc as a user does (`python -m ducc ...` in a subprocess) and build test images."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.images import (
    Image,
    Layer,
    directory,
    file,
    host_rootfs_entries,
    make_image,
    make_layer,
)

_BASE: Layer | None = None


def base_layer() -> Layer:
    """A Debian-style root filesystem layer (dash, echo, cat and their libraries)."""
    global _BASE  # noqa: PLW0603 - built once per test session
    if _BASE is None:
        _BASE = make_layer(host_rootfs_entries(["/bin/sh", "/bin/echo", "/bin/cat"]))
    return _BASE


def app_layer(text: str) -> Layer:
    return make_layer([directory("etc"), file("etc/app", text), file(f"etc/{text}", text)])


def app_image(text: str, **kw: Any) -> Image:
    return make_image([base_layer(), app_layer(text)], cmd=["/bin/cat", "/etc/app"], **kw)


def unique(prefix: str) -> str:
    """A repository name no other test uses (the registry is shared by the session)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def write_recipe(path: Path, repo: str, images: Sequence[str], **extra: Any) -> Path:
    lines = ["version: 1", f"cvmfs_repo: '{repo}'", "input:"]
    lines += [f"  - '{image}'" for image in images]
    for key, values in extra.items():
        lines.append(f"{key}:")
        lines += [f"  - '{value}'" for value in values]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def outcomes(self) -> dict[str, str]:
        return {r["image"]: r["outcome"] for r in self.json()["images"]}


def ducc(
    *args: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> Run:
    """`ducc ARGS...` in a fresh process with the current environment plus `env`."""
    done = subprocess.run(
        [sys.executable, "-m", "ducc", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)
