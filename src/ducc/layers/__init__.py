"""The layer engine: verified layer streams applied safely to directory trees.

Plain streams and paths in, trees out; no registry or publisher knowledge. See `apply`
(changeset and literal application), `stream` (one verified pass per layer), `stage`
(products appear only when complete), `clone` (hard-link copies for chains) and `rebuild`
(a clean tar for `cvmfs_server ingest`).
"""

from ducc.layers.apply import ApplyMode, ApplyStats, apply_layer
from ducc.layers.compression import compression_for
from ducc.layers.limits import Limits
from ducc.layers.stage import remove_tree, staged
from ducc.layers.stream import LayerDigests, LayerStream
from ducc.oci.model import Compression

__all__ = [
    "ApplyMode",
    "ApplyStats",
    "Compression",
    "LayerDigests",
    "LayerStream",
    "Limits",
    "apply_layer",
    "compression_for",
    "remove_tree",
    "staged",
]
