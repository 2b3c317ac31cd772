"""What the pipeline asks of a publisher, whichever one it is.

A tree product (a chain, a flat tree) is built by `product()`, which makes it appear whole
or not at all: a staging sibling renamed into place in a plain directory, a transaction of
its own on CernVM-FS, where a product that starts as a copy of another is a template
transaction (a catalog-level clone: no data copied, nothing for the publish to process).
Small writes (metadata, links) go into a `transaction()`; a publisher decides what that
means (a `cvmfs_server` transaction, or nothing more than the lock for a plain directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ducc.layers.limits import Limits
from ducc.layers.stream import LayerDigests, LayerStream

# CernVM-FS makes a directory holding this file the root of a nested catalog; every
# publisher writes one into each product and product parent (`Publisher.directories`), so
# the repository model reads it too (a chain is complete when its marker is there).
CATALOG_MARKER = ".cvmfscatalog"


class LayerOpener(Protocol):
    """Opens a fresh, verifying stream over one layer (called once per use)."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> Limits: ...

    def open(self) -> LayerStream: ...


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one layer's ingest measured. `plain`: its literal tree is exactly the changeset
    applied to an empty tree, so the bottom chain may start as a copy of it."""

    digests: LayerDigests
    plain: bool = False


class Publisher(Protocol):
    kind: str
    mount: Path  # the repository as a whole (`/cvmfs/<repo>` or the --root directory)
    root: Path  # where this recipe's images live: `mount`, or `mount/<subdir>`
    leases: bool  # transactions take lease paths (CernVM-FS gateway)
    # whether `ingest_layer` can build the layer's chain in the same pass (one file system)
    chains_in_ingest: bool

    @property
    def publishes(self) -> int: ...

    @property
    def ingests(self) -> int: ...

    def session(self, *, wait: bool) -> AbstractContextManager[None]:
        """Hold the repository for this process: lock, and recover from a crashed run."""
        ...

    def transaction(self, lease: str | None = None) -> AbstractContextManager[None]:
        """Writes under `root` are allowed inside; success publishes, an error aborts.

        `lease` (a path relative to `root`) scopes the transaction on a gateway publisher.
        """
        ...

    def product(self, dest: Path, *, template: Path | None = None) -> AbstractContextManager[Path]:
        """Build the tree `dest` (absent; its parent exists): yields the directory to write
        it in, which starts as a copy of the complete tree `template` when one is given.
        Success makes `dest` appear whole; an error leaves nothing of it. On a gateway the
        product is built under a lease of its own."""
        ...

    def directories(self, paths: Sequence[Path]) -> None:
        """Make `paths` (under `root`) directories with a `.cvmfscatalog` each, where they
        are not: the parents of products, each a nested catalog."""
        ...

    def overlay_available(self) -> bool:
        """Whether flat trees can be merged on the server (`cvmfs_server overlay`)."""
        ...

    def ingest_layer(
        self,
        layerfs: Path,
        layer: LayerOpener,
        lower: Path | None = None,
        *,
        replace: bool = False,
        chain: Path | None = None,
    ) -> Ingested:
        """Put a layer's literal content at `layerfs` (its own publish on CernVM-FS);
        return what the verified pass over the layer measured. `lower` is the tree below
        the layer, where a hard link to a file of a lower layer finds its content; `replace`
        (`--overwrite-layers`): a tree already there is not trusted to be the layer's.
        `chain` (only where `chains_in_ingest`): a product being built, into which the same
        pass applies the layer as a changeset."""
        ...

    def overlay(self, layers: Sequence[Path], dest: Path) -> None:
        """Merge layer trees (bottom first) into `dest` on the server, with OCI whiteout
        semantics (`cvmfs_server overlay`; its own publish)."""
        ...

    def delete(self, paths: Sequence[Path]) -> None:
        """Remove products (absolute paths under `root`)."""
        ...
