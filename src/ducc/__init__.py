"""ducc: publish container images into CernVM-FS, unpacked."""

__version__ = "0.1.0"
