"""The directory publisher (the default without CernVM-FS): a plain directory with the
exact layout of a repository. Each product is staged next to its place and renamed in,
so a reader never sees half of one; a product that starts as a copy of another is a
hard-link clone of it (free on one file system). One ducc at a time holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

from ducc import log
from ducc.errors import PublishError
from ducc.files import exchange
from ducc.layers.apply import ApplyMode, apply_layer
from ducc.layers.clone import clone_tree
from ducc.layers.stage import remove_tree, staged
from ducc.publish.base import CATALOG_MARKER, Ingested, LayerOpener
from ducc.publish.records import Lock

_log = log.get("publish.directory")
STAGING = re.compile(r"^\..+\.tmp-[A-Za-z0-9_]+$")
# Where products are staged, as (top directory of the repository, depth below it): chains,
# flat trees and layer directories two levels down (`.chains/<xx>/<hex>`), a layer's
# `layerfs` one deeper. The names are the repository layout's (`ducc.repository.layout`,
# which sits above the publishers); tests/unit/test_publish_directory_staging.py keeps them
# equal.
STAGED = ((".layers", 2), (".layers", 3), (".chains", 2), (".flat", 2))


class DirectoryPublisher:
    kind = "dir"
    leases = False
    chains_in_ingest = True  # one pass over a layer writes its tree and its chain

    def __init__(self, mount: Path, subdir: str = "") -> None:
        self.mount = mount
        self.root = mount / subdir if subdir else mount
        self._publishes = 0
        self._ingests = 0

    @property
    def publishes(self) -> int:
        return self._publishes

    @property
    def ingests(self) -> int:
        return self._ingests

    @contextlib.contextmanager
    def session(self, *, wait: bool) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with Lock(self.mount, f"directory {self.mount}").held(wait=wait):
            self._remove_stale_staging()
            yield

    def _remove_stale_staging(self) -> None:
        """Staging trees left by a killed run are incomplete by definition: remove them.

        This runs at every session and the repository only grows, so the scan walks names
        one directory at a time instead of holding a path for every product at once.
        """
        for top, depth in STAGED:
            for candidate in _staging_below(os.fspath(self.root / top), depth):
                _log.info("stale_staging_removed", path=candidate)
                remove_tree(Path(candidate))

    @contextlib.contextmanager
    def transaction(self, lease: str | None = None) -> Iterator[None]:
        yield
        self._publishes += 1

    @contextlib.contextmanager
    def product(self, dest: Path, *, template: Path | None = None) -> Iterator[Path]:
        with staged(dest) as tree:
            if template is not None:
                clone_tree(template, tree)
            yield tree
        self._publishes += 1

    def directories(self, paths: Sequence[Path]) -> None:
        for path in paths:
            path.mkdir(parents=True, exist_ok=True)
            if not (path / CATALOG_MARKER).exists():
                (path / CATALOG_MARKER).touch()

    def overlay_available(self) -> bool:
        return False

    def ingest_layer(
        self,
        layerfs: Path,
        layer: LayerOpener,
        lower: Path | None = None,
        *,
        replace: bool = False,
        chain: Path | None = None,
    ) -> Ingested:
        """Stage the literal layer; over an existing one (`--overwrite-layers`, or a run that
        died before the layer's metadata), swap it in atomically, so that a layer images
        already use is never missing, not even for a moment."""
        existing = os.path.lexists(layerfs)
        made = not layerfs.parent.exists()  # the layer's directory, by this ingest
        target = (
            layerfs.with_name(f".{layerfs.name}.tmp-new{secrets.token_hex(4)}")
            if existing
            else layerfs
        )
        try:
            with staged(target) as tmp:
                stream = layer.open()
                stats = apply_layer(
                    tmp,
                    stream,
                    mode=ApplyMode.LITERAL,
                    limits=layer.limits,
                    name=layer.name,
                    lower=lower,
                    twin=chain,
                )
                (tmp / CATALOG_MARKER).touch()
        except BaseException:
            if made:  # a refused layer leaves no empty `.layers/<xx>/<hex>/` behind
                with contextlib.suppress(OSError):
                    layerfs.parent.rmdir()
            raise
        if existing:
            exchange(target, layerfs)
            remove_tree(target)  # now the old tree
        self._ingests += 1
        return Ingested(stats.digests)

    def overlay(self, layers: Sequence[Path], dest: Path) -> None:
        raise PublishError(
            "the directory publisher has no server-side overlay",
            hint="drop --server-overlay, or publish with --publisher cvmfs",
        )

    def delete(self, paths: Sequence[Path]) -> None:
        for path in paths:
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.exists():
                remove_tree(path)


def _staging_below(path: str, depth: int) -> Iterator[str]:
    """Staging directories exactly `depth` levels below `path` (symlinks not followed)."""
    try:
        with os.scandir(path) as entries:
            names = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for name in names:
        if depth == 1 and STAGING.match(name):
            yield os.path.join(path, name)
        elif depth > 1:
            yield from _staging_below(os.path.join(path, name), depth - 1)
