"""Apply one layer to a directory tree: OCI changeset semantics or the literal layer content.

CHANGESET (chains, flat trees, `ducc unpack`): whiteouts and opaque markers hide lower
content and are not materialised; every non-directory entry unlinks what is there and
creates anew, a directory over a directory only updates attributes (OCI `layer.md`,
"Changeset over existing files"). LITERAL (`.layers/<xx>/<hex>/layerfs`): the entries as
they are, `.wh.*` files included. Both modes keep every write inside the tree: see paths.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from ducc.errors import LayerError, MalformedLayer, VerificationError
from ducc.layers.applier import Applier
from ducc.layers.limits import Limits
from ducc.layers.stats import ApplyMode, ApplyStats
from ducc.layers.stream import READ_AHEAD_BYTES, LayerStream
from ducc.layers.tarstream import TarReader

__all__ = ["ApplyMode", "ApplyStats", "apply_layer"]


def apply_layer(
    root: Path,
    stream: LayerStream,
    *,
    mode: ApplyMode = ApplyMode.CHANGESET,
    limits: Limits = Limits(),  # noqa: B008 - frozen, shared safely
    name: str,
    lower: Path | None = None,
    privileged: bool | None = None,
    twin: Path | None = None,
) -> ApplyStats:
    """Apply the layer in `stream` to the existing directory `root` and verify the stream.

    `lower` (LITERAL only) is the tree below this layer, for hard links to files the layer
    does not contain. `twin` (LITERAL only): a second tree to which the same pass applies the
    layer as a changeset (a chain: `lower` with this layer): the layer is read, decompressed
    and parsed once for both; each tree gets files of its own (no inode is shared, so
    damage to one tree never reaches the other). `privileged` (default: running as root)
    decides whether owners and device nodes are applied. Any refusal raises HostileLayer
    naming the layer and entry; the trees are then partly written and the caller discards
    them (see `stage.staged`).
    """
    if twin is not None and mode is not ApplyMode.LITERAL:
        raise ValueError("a twin tree is built only beside a literal one")
    stream.limit(limits.max_bytes + READ_AHEAD_BYTES)
    reader = TarReader(stream, limits=limits, name=name)
    applier = Applier(os.fspath(root), mode, name, lower, privileged)
    second = Applier(os.fspath(twin), ApplyMode.CHANGESET, name, None, privileged) if twin else None
    try:
        applier.run(reader, second)
        digests = stream.finish()
    except (MalformedLayer, VerificationError) as exc:
        stream.check_download(exc)
        raise
    except OSError as exc:
        at = (second or applier).entry  # a twin meets each entry first
        raise LayerError(f"layer {name}: entry {at!r}: {exc}") from exc
    finally:
        stream.close()
    applier.metadata.report()
    return applier.stats(reader.count, digests)
