"""The layer engine: verified layer streams applied safely to directory trees.

Plain streams and paths in, trees out; no registry or publisher knowledge. See `apply`
(changeset and literal application, one tree or a layer tree and its chain in one pass;
`applier` does the work), `stream` (one verified pass per layer), `tarstream` and
`tarheader` (validated entries out of the tar bytes), `stage` (products appear
only when complete), `clone` (hard-link copies for chains) and `rebuild` (a clean tar for
`cvmfs_server ingest`).

By the package order it may import the leaf modules, `oci`, `recipe` and `registry`; it
uses only the first two.
"""
