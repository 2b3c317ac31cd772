"""ducc: publish container images into CernVM-FS, unpacked.

The packages, bottom up, each importing only those before it (tests/unit/
test_architecture.py): the leaf modules here (`errors`, `log`, `run`, `files`, `progress`,
`units`, `interrupts`, `metrics`), then `oci`, `recipe`, `registry`, `layers`, `publish`,
`repository`, `pipeline`, `service` and `cli`.
"""

__version__ = "0.1.0"
