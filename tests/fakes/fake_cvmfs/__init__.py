"""A fake `cvmfs_server` with real semantics for the tests (documented in ../README.md)."""
