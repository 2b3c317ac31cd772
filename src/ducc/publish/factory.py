"""Choosing and building a publisher for a recipe's `cvmfs_repo` from the settings."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ducc import log
from ducc.publish.base import Publisher
from ducc.publish.cvmfs import CvmfsPublisher
from ducc.publish.cvmfs_server import EXECUTABLE, CvmfsServer
from ducc.publish.directory import DirectoryPublisher
from ducc.recipe.model import CvmfsRepo

_log = log.get("publish")


class PublisherKind(StrEnum):
    CVMFS = "cvmfs"
    DIR = "dir"


def default_kind() -> PublisherKind:
    """`cvmfs` where `cvmfs_server` is on PATH (a stratum 0), else the directory publisher."""
    return PublisherKind.CVMFS if shutil.which(EXECUTABLE) else PublisherKind.DIR


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    kind: PublisherKind
    state_dir: Path
    root: Path | None = None  # the dir publisher's repository root
    cvmfs_prefix: Path = Path("/cvmfs")
    abort_stale: bool = False
    gateway: bool = False

    def make(self, repo: CvmfsRepo) -> Publisher:
        if self.kind == PublisherKind.CVMFS:
            return CvmfsPublisher(
                repo.name,
                repo.subdir,
                prefix=self.cvmfs_prefix,
                state_dir=self.state_dir,
                server=CvmfsServer(),
                abort_stale=self.abort_stale,
                gateway=self.gateway,
            )
        mount = self.root if self.root is not None else Path("ducc-repos") / repo.name
        return DirectoryPublisher(mount.absolute(), repo.subdir)
