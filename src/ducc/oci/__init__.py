"""Pure data and grammar of container images, no I/O: digests, references, tag globs,
platforms and the OCI/Docker manifest, index and config model with its strict JSON reader.

May import only the top-level leaf modules (`ducc.errors`, ...); everything else builds on it.
"""
