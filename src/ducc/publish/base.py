"""What the pipeline asks of a publisher, whichever one it is.

Products are always built in a staging sibling and renamed into place, inside a
`transaction()`; a publisher decides what a transaction means (a `cvmfs_server`
transaction, or nothing more than the lock for a plain directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from ducc.layers.limits import Limits
from ducc.layers.stream import LayerDigests, LayerStream


class LayerOpener(Protocol):
    """Opens a fresh, verifying stream over one layer (called once per use)."""

    @property
    def name(self) -> str: ...

    @property
    def limits(self) -> Limits: ...

    def open(self) -> LayerStream: ...


class Publisher(Protocol):
    kind: str
    mount: Path  # the repository as a whole (`/cvmfs/<repo>` or the --root directory)
    root: Path  # where this recipe's images live: `mount`, or `mount/<subdir>`
    leases: bool  # transactions take lease paths (CernVM-FS gateway)

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

    def ingest_layer(
        self, layerfs: Path, layer: LayerOpener, lower: Path | None = None
    ) -> LayerDigests:
        """Put a layer's literal content at `layerfs` (its own publish on CernVM-FS);
        return what the verified pass over the layer measured. `lower` is the tree below
        the layer, where a hard link to a file of a lower layer finds its content."""
        ...

    def overlay(self, layers: Sequence[Path], dest: Path) -> None:
        """Merge layer trees (bottom first) into `dest` on the server, with OCI whiteout
        semantics (`cvmfs_server overlay`; its own publish)."""
        ...

    def delete(self, paths: Sequence[Path]) -> None:
        """Remove products (absolute paths under `root`)."""
        ...
