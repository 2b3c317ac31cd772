"""What applying a layer is asked to do (its mode) and what it did (its counts)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ducc.layers.stream import LayerDigests


class ApplyMode(StrEnum):
    CHANGESET = "changeset"
    LITERAL = "literal"


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What one layer did to the tree, and the digests its stream measured."""

    entries: int
    files: int
    directories: int
    symlinks: int
    hardlinks: int
    specials: int
    whiteouts: int
    opaques: int
    bytes: int
    skipped_owners: int
    skipped_devices: int
    skipped_xattrs: int
    digests: LayerDigests


@dataclass(slots=True)
class Counts:
    files: int = 0
    directories: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    specials: int = 0
    whiteouts: int = 0
    opaques: int = 0
    bytes: int = 0
