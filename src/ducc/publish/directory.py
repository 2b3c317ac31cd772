"""The directory publisher (the default without CernVM-FS): a plain directory with the
exact layout of a repository. Each product is staged next to its place and renamed in,
so a reader never sees half of one; one ducc at a time holds the directory's lock.
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
from ducc.layers.stage import remove_tree, staged
from ducc.layers.stream import LayerDigests
from ducc.layout import CATALOG_MARKER, CHAINS, FLAT, LAYERS
from ducc.publish.base import LayerOpener
from ducc.publish.records import Lock

_log = log.get("publish.directory")
STAGING = re.compile(r"^\..+\.tmp-[A-Za-z0-9_]+$")


class DirectoryPublisher:
    kind = "dir"
    leases = False

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
        """Staging trees left by a killed run are incomplete by definition: remove them."""
        candidates = [
            *(
                d
                for top in (LAYERS, CHAINS, FLAT)
                for s in _subdirs(self.root / top)
                for d in _subdirs(s)
            ),
            # a layer's `layerfs` is staged one level deeper, inside `.layers/<xx>/<hex>/`
            *(d for s in _subdirs(self.root / LAYERS) for h in _subdirs(s) for d in _subdirs(h)),
        ]
        for candidate in candidates:
            if STAGING.match(candidate.name):
                _log.info("stale_staging_removed", path=str(candidate))
                remove_tree(candidate)

    @contextlib.contextmanager
    def transaction(self, lease: str | None = None) -> Iterator[None]:
        yield
        self._publishes += 1

    def ingest_layer(
        self, layerfs: Path, layer: LayerOpener, lower: Path | None = None
    ) -> LayerDigests:
        """Stage the literal layer; over an existing one (`--overwrite-layers`, or a run that
        died before the layer's metadata), swap it in atomically, so that a layer images
        already use is never missing, not even for a moment."""
        existing = os.path.lexists(layerfs)
        target = (
            layerfs.with_name(f".{layerfs.name}.tmp-new{secrets.token_hex(4)}")
            if existing
            else layerfs
        )
        with staged(target) as tmp:
            stream = layer.open()
            stats = apply_layer(
                tmp,
                stream,
                mode=ApplyMode.LITERAL,
                limits=layer.limits,
                name=layer.name,
                lower=lower,
            )
            (tmp / CATALOG_MARKER).touch()
        if existing:
            exchange(target, layerfs)
            remove_tree(target)  # now the old tree
        self._ingests += 1
        return stats.digests

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


def _subdirs(path: Path) -> list[Path]:
    try:
        return [p for p in path.iterdir() if p.is_dir() and not p.is_symlink()]
    except OSError:
        return []
