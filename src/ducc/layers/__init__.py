"""The layer engine: verified layer streams applied safely to directory trees.

Plain streams and paths in, trees out; no registry or publisher knowledge. See `apply`
(changeset and literal application), `stream` (one verified pass per layer), `stage`
(products appear only when complete), `clone` (hard-link copies for chains) and `rebuild`
(a clean tar for `cvmfs_server ingest`).

May import the top-level leaf modules and `ducc.oci` (and, by the package order, `recipe`
and `registry`, which it has no use for).
"""
