"""Fakes of external tools for the tests: real executables on PATH with real semantics."""
